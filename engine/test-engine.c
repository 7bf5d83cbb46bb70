/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The engine's API contract, case by case: argument checks, unaligned I/O,
 * one copy per write whatever the number of snapshots, persistence across
 * close and abandon, the lock against a second opener, damaged metadata
 * (clear errors at open; invalid snapshots when frames were lost), a 64 GiB
 * sparse volume, changed-block tracking and revert on a small pattern.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/journal.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)
#define CHECK_R(call, want)                                                                                 \
        do {                                                                                                \
                int _r = (call);                                                                            \
                if (_r != (want)) {                                                                         \
                        fprintf(stderr, "%s:%d: %s returned %d (%s), wanted %d\n", __FILE__, __LINE__,      \
                                #call, _r, strerror(-_r), (want));                                          \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

static char root[256];

static const char *dirof(const char *name) {
        static char buf[4][512];
        static int k;
        k = (k + 1) % 4;
        snprintf(buf[k], sizeof buf[k], "%s/%s", root, name);
        return buf[k];
}

static void fill(uint8_t *b, size_t n, unsigned seed) {
        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t) (seed * 131 + i * 7 + (i >> 9));
}

static void test_args(void) {
        eng_volume *v = NULL;
        struct eng_create_params p = { .size = 1 << 20, .chunk_size = 3000 };
        CHECK_R(engine_volume_create(dirof("args"), &p, &v), -EINVAL);
        p.chunk_size = 2048;
        CHECK_R(engine_volume_create(dirof("args"), &p, &v), -EINVAL);
        p.chunk_size = 2u << 20;
        CHECK_R(engine_volume_create(dirof("args"), &p, &v), -EINVAL);
        p = (struct eng_create_params){ .size = 0 };
        CHECK_R(engine_volume_create(dirof("args"), &p, &v), -EINVAL);
        p.size = 1000;
        CHECK_R(engine_volume_create(dirof("args"), &p, &v), -EINVAL);
        CHECK_R(engine_volume_open(dirof("nothing-here"), &v), -ENOENT);
        CHECK(v == NULL);

        p = (struct eng_create_params){ .size = 1 << 20 };
        CHECK_R(engine_volume_create(dirof("args"), &p, &v), 0);
        eng_volume *w = NULL;
        CHECK_R(engine_volume_create(dirof("args"), &p, &w), -EEXIST);
        CHECK_R(engine_volume_open(dirof("args"), &w), -EWOULDBLOCK);
        uint8_t b[16];
        CHECK_R(engine_write(v, b, 16, (1 << 20) - 8), -EINVAL);
        CHECK_R(engine_read(v, b, 16, UINT64_MAX - 4), -EINVAL);
        char label[80];
        memset(label, 'x', sizeof label - 1);
        label[sizeof label - 1] = 0;
        uint32_t id;
        struct eng_snap_params sp = { .persistent = true, .label = label };
        CHECK_R(engine_snapshot_create(v, &sp, &id), -EINVAL);
        CHECK_R(engine_snapshot_delete(v, 77), -ENOENT);
        CHECK_R(engine_snapshot_read(v, 77, b, 16, 0), -ENOENT);
        CHECK_R(engine_release(v), -ENOENT);
        engine_volume_close(v);
}

static void test_basic(void) {
        const uint32_t chunk = 16384;
        struct eng_create_params p = { .size = 64 * chunk + 4096, .chunk_size = chunk };
        eng_volume *v;
        CHECK_R(engine_volume_create(dirof("basic"), &p, &v), 0);

        size_t n = (size_t) p.size;
        uint8_t *a = malloc(n), *b = malloc(n), *r = malloc(n);
        fill(a, n, 1);
        /* Unaligned, crossing chunks and the odd tail. */
        CHECK_R(engine_write(v, a + 3, n - 3 - 5, 3), 0);
        memset(a, 0, 3);
        memset(a + n - 5, 0, 5);
        CHECK_R(engine_read(v, r, n, 0), 0);
        CHECK(memcmp(a, r, n) == 0);

        /* Three snapshots, then one write: exactly one chunk preserved, for all three. */
        uint32_t s1, s2, s3, s4;
        struct eng_snap_params per = { .persistent = true, .label = "first" }, non = { .persistent = false };
        CHECK_R(engine_snapshot_create(v, &per, &s1), 0);
        CHECK_R(engine_snapshot_create(v, &non, &s2), 0);
        CHECK_R(engine_snapshot_create(v, &per, &s3), 0);
        CHECK(s1 < s2 && s2 < s3);
        struct eng_volume_info info;
        CHECK_R(engine_volume_info(v, &info), 0);
        uint64_t copies = info.cow_copies;
        memcpy(b, a, n);
        fill(b + 5 * chunk + 100, 200, 9);
        CHECK_R(engine_write(v, b + 5 * chunk + 100, 200, 5 * chunk + 100), 0);
        CHECK_R(engine_volume_info(v, &info), 0);
        CHECK(info.cow_copies == copies + 1);
        CHECK(info.exceptions == 1);
        /* Rewriting the same chunk copies nothing more. */
        CHECK_R(engine_write(v, b + 5 * chunk + 100, 200, 5 * chunk + 100), 0);
        CHECK_R(engine_volume_info(v, &info), 0);
        CHECK(info.cow_copies == copies + 1);

        for (uint32_t id = s1; id <= s3; id++) {
                CHECK_R(engine_snapshot_read(v, id, r, n, 0), 0);
                CHECK(memcmp(a, r, n) == 0);
        }
        CHECK_R(engine_snapshot_create(v, &per, &s4), 0);
        CHECK_R(engine_snapshot_read(v, s4, r, n, 0), 0);
        CHECK(memcmp(b, r, n) == 0);

        /* Changed-block tracking: only chunk 5 between s1 and s4, and since s1. */
        uint64_t *bm, nch;
        CHECK_R(engine_changed_chunks(v, s1, s4, &bm, &nch), 0);
        CHECK(nch == 65 && bm[0] == (UINT64_C(1) << 5) && bm[1] == 0);
        free(bm);
        CHECK_R(engine_changed_chunks(v, s3, 0, &bm, &nch), 0);
        CHECK(bm[0] == (UINT64_C(1) << 5));
        free(bm);
        CHECK_R(engine_changed_chunks(v, s4, 0, &bm, &nch), 0);
        CHECK(bm[0] == 0 && bm[1] == 0);
        free(bm);
        CHECK_R(engine_changed_chunks(v, s4, s1, &bm, &nch), -EINVAL);

        /* Delete the middle one; the others still read their data. */
        CHECK_R(engine_snapshot_delete(v, s2), 0);
        CHECK_R(engine_snapshot_read(v, s2, r, 16, 0), -ENOENT);
        CHECK_R(engine_snapshot_read(v, s1, r, n, 0), 0);
        CHECK(memcmp(a, r, n) == 0);

        /* Close: the non-persistent snapshots are gone, the persistent ones identical. */
        uint32_t s5;
        CHECK_R(engine_snapshot_create(v, &non, &s5), 0);
        engine_volume_close(v);
        CHECK_R(engine_volume_open(dirof("basic"), &v), 0);
        struct eng_snap_info *list;
        size_t ln;
        CHECK_R(engine_snapshot_list(v, &list, &ln), 0);
        CHECK(ln == 3 && list[0].id == s1 && list[1].id == s3 && list[2].id == s4);
        CHECK(strcmp(list[0].label, "first") == 0 && list[0].persistent && list[0].state == ENG_SNAP_VALID);
        free(list);
        CHECK_R(engine_snapshot_read(v, s5, r, 16, 0), -ENOENT);
        CHECK_R(engine_snapshot_read(v, s3, r, n, 0), 0);
        CHECK(memcmp(a, r, n) == 0);
        CHECK_R(engine_read(v, r, n, 0), 0);
        CHECK(memcmp(b, r, n) == 0);

        /* Revert to s1; s4 keeps its own content. */
        CHECK_R(engine_revert(v, s1), 0);
        CHECK_R(engine_read(v, r, n, 0), 0);
        CHECK(memcmp(a, r, n) == 0);
        CHECK_R(engine_snapshot_read(v, s4, r, n, 0), 0);
        CHECK(memcmp(b, r, n) == 0);

        /* Abandon (a process crash): same again, and new ids never reuse old ones. */
        engine_volume_abandon(v);
        CHECK_R(engine_volume_open(dirof("basic"), &v), 0);
        CHECK_R(engine_snapshot_read(v, s4, r, n, 0), 0);
        CHECK(memcmp(b, r, n) == 0);
        uint32_t s6;
        CHECK_R(engine_snapshot_create(v, &per, &s6), 0);
        CHECK(s6 > s5);
        engine_volume_close(v);
        free(a);
        free(b);
        free(r);
}

static void corrupt(const char *dir, off_t off, const void *bytes, size_t n, off_t truncate_to) {
        char path[600];
        snprintf(path, sizeof path, "%s/meta", dir);
        int fd = open(path, O_RDWR);
        CHECK(fd >= 0);
        if (bytes)
                CHECK(pwrite(fd, bytes, n, off) == (ssize_t) n);
        if (truncate_to >= 0)
                CHECK(ftruncate(fd, truncate_to) == 0);
        close(fd);
}

static void test_bad_meta(void) {
        struct eng_create_params p = { .size = 1 << 20, .chunk_size = 4096 };
        eng_volume *v;
        const char *d = dirof("badmeta");
        CHECK_R(engine_volume_create(d, &p, &v), 0);
        engine_volume_close(v);

        corrupt(d, 0, NULL, 0, 100);
        CHECK_R(engine_volume_open(d, &v), -EBADMSG);

        static uint8_t garbage[JR_SUPER_SIZE * 2];
        for (size_t i = 0; i < sizeof garbage; i++)
                garbage[i] = (uint8_t) (i * 37 + 11);
        corrupt(d, 0, garbage, sizeof garbage, -1);
        CHECK_R(engine_volume_open(d, &v), -EBADMSG);

        struct jr_super s = { .version = 9, .size = 1 << 20, .chunk_size = 4096, .first_seq = 1 };
        uint8_t sb[JR_SUPER_SIZE];
        journal_encode_super(&s, sb);
        corrupt(d, 0, sb, sizeof sb, JR_SUPER_SIZE);
        CHECK_R(engine_volume_open(d, &v), -EPROTONOSUPPORT);

        /* A valid superblock with an empty journal is a volume with no snapshots. */
        s.version = JR_VERSION;
        journal_encode_super(&s, sb);
        corrupt(d, 0, sb, sizeof sb, JR_SUPER_SIZE);
        CHECK_R(engine_volume_open(d, &v), 0);
        engine_volume_close(v);
}

static void test_lost_frames(void) {
        struct eng_create_params p = { .size = 1 << 20, .chunk_size = 4096 };
        eng_volume *v;
        const char *d = dirof("lost");
        CHECK_R(engine_volume_create(d, &p, &v), 0);
        uint8_t buf[4096];
        uint32_t ids[4];
        struct eng_snap_params per = { .persistent = true };
        for (int i = 0; i < 4; i++) {
                fill(buf, sizeof buf, (unsigned) i);
                CHECK_R(engine_write(v, buf, sizeof buf, (uint64_t) i * 4096), 0);
                CHECK_R(engine_snapshot_create(v, &per, &ids[i]), 0);
        }
        /* One frame per commit; abandon so no checkpoint rewrites them. */
        engine_volume_abandon(v);
        /* Damage the first frame after the checkpoint's: later frames survive, so records were lost. */
        char path[600];
        snprintf(path, sizeof path, "%s/meta", d);
        struct stat st;
        CHECK(stat(path, &st) == 0);
        CHECK(st.st_size > JR_SUPER_SIZE + 200);
        /* Frames: checkpoint, S1, exception for chunk 1, S2, ... Damage the third. */
        int fd = open(path, O_RDONLY);
        CHECK(fd >= 0);
        off_t off = JR_SUPER_SIZE;
        for (int i = 0; i < 2; i++) {
                uint8_t hdr[8];
                CHECK(pread(fd, hdr, 8, off) == 8);
                uint32_t plen = (uint32_t) hdr[4] | (uint32_t) hdr[5] << 8 | (uint32_t) hdr[6] << 16 |
                                (uint32_t) hdr[7] << 24;
                off += JR_FRAME_HEADER + plen;
        }
        close(fd);
        uint8_t x = 0xff;
        corrupt(d, off + JR_FRAME_HEADER + 2, &x, 1, -1);
        /* Open refuses, changing nothing; repair keeps a copy and marks what it can list invalid. */
        CHECK_R(engine_volume_open(d, &v), -EUCLEAN);
        CHECK_R(engine_volume_open(d, &v), -EUCLEAN);
        CHECK_R(engine_volume_repair(d), 0);
        snprintf(path, sizeof path, "%s/meta.damaged", d);
        CHECK(access(path, F_OK) == 0);
        CHECK_R(engine_volume_open(d, &v), 0);
        struct eng_snap_info *list;
        size_t n;
        CHECK_R(engine_snapshot_list(v, &list, &n), 0);
        /* What survived is listed, but nothing is served. */
        CHECK(n == 1 && list[0].id == ids[0]);
        for (size_t i = 0; i < n; i++) {
                CHECK(list[i].state == ENG_SNAP_INVALID);
                CHECK_R(engine_snapshot_read(v, list[i].id, buf, 16, 0), -EIO);
        }
        free(list);
        /* Writes still work and invalid snapshots can be deleted. */
        CHECK_R(engine_write(v, buf, 16, 0), 0);
        engine_volume_close(v);
}

/* A closed volume's checkpoint is renamed into place whole: damage in it is never a torn commit. */
static void test_damaged_checkpoint(void) {
        struct eng_create_params p = { .size = 1 << 20, .chunk_size = 4096 };
        eng_volume *v;
        const char *d = dirof("ckpt");
        CHECK_R(engine_volume_create(d, &p, &v), 0);
        uint8_t buf[4096];
        uint32_t id;
        struct eng_snap_params per = { .persistent = true };
        CHECK_R(engine_snapshot_create(v, &per, &id), 0);
        fill(buf, sizeof buf, 3);
        CHECK_R(engine_write(v, buf, sizeof buf, 0), 0);
        CHECK_R(engine_snapshot_create(v, &per, &id), 0);
        engine_volume_close(v);

        char path[600];
        snprintf(path, sizeof path, "%s/meta", d);
        uint8_t x = 0x5a;
        corrupt(d, JR_SUPER_SIZE + JR_FRAME_HEADER + 40, &x, 1, -1);
        FILE *f = fopen(path, "rb");
        static uint8_t before[65536], after[65536];
        size_t nb = fread(before, 1, sizeof before, f);
        fclose(f);
        CHECK_R(engine_volume_open(d, &v), -EUCLEAN);
        f = fopen(path, "rb");
        size_t na = fread(after, 1, sizeof after, f);
        fclose(f);
        CHECK(na == nb && memcmp(before, after, nb) == 0);
        CHECK_R(engine_volume_repair(d), 0);
        CHECK_R(engine_volume_open(d, &v), 0);
        uint8_t r[4096];
        CHECK_R(engine_read(v, r, sizeof r, 0), 0);
        CHECK(memcmp(r, buf, sizeof r) == 0); /* the live data is untouched */
        engine_volume_close(v);
}

static void test_huge_sparse(void) {
        struct eng_create_params p = { .size = 64ull << 30 };
        eng_volume *v;
        const char *d = dirof("huge");
        CHECK_R(engine_volume_create(d, &p, &v), 0);
        uint32_t id;
        struct eng_snap_params per = { .persistent = true };
        CHECK_R(engine_snapshot_create(v, &per, &id), 0);
        uint8_t buf[512] = { 1, 2, 3 };
        CHECK_R(engine_write(v, buf, sizeof buf, (64ull << 30) - 512), 0);
        uint8_t r[512];
        CHECK_R(engine_snapshot_read(v, id, r, sizeof r, (64ull << 30) - 512), 0);
        for (size_t i = 0; i < sizeof r; i++)
                CHECK(r[i] == 0);
        struct eng_volume_info info;
        CHECK_R(engine_volume_info(v, &info), 0);
        CHECK(info.mem_bytes < 1024 * 1024);
        engine_volume_close(v);
}

static void test_max_snapshots(void) {
        struct eng_create_params p = { .size = 1 << 16, .chunk_size = 4096 };
        eng_volume *v;
        CHECK_R(engine_volume_create(dirof("max"), &p, &v), 0);
        struct eng_snap_params non = { .persistent = false };
        uint32_t id;
        for (unsigned i = 0; i < ENG_MAX_SNAPSHOTS; i++)
                CHECK_R(engine_snapshot_create(v, &non, &id), 0);
        CHECK_R(engine_snapshot_create(v, &non, &id), -EMLINK);
        struct eng_volume_info info;
        uint8_t b[4096] = { 7 };
        CHECK_R(engine_write(v, b, sizeof b, 0), 0);
        CHECK_R(engine_volume_info(v, &info), 0);
        CHECK(info.cow_copies == 1 && info.n_snapshots == ENG_MAX_SNAPSHOTS);
        engine_volume_close(v);
}

int main(void) {
        const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
        snprintf(root, sizeof root, "%s/lvss-test-engine-XXXXXX", tmp);
        CHECK(mkdtemp(root));
        test_args();
        test_basic();
        test_bad_meta();
        test_lost_frames();
        test_damaged_checkpoint();
        test_huge_sparse();
        test_max_snapshots();
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        CHECK(system(cmd) == 0);
        printf("engine ok\n");
        return 0;
}
