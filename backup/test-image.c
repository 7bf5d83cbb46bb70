/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Image backups on real files (under /var/tmp, a disk file system with holes): an image of random
 * chunks and zero chunks is backed up in full, then changed (chunks rewritten, one zeroed, one
 * grown from zeros) and backed up incrementally twice and differentially, each with a changed-chunk
 * bitmap that also marks an unchanged chunk (a false positive of the tracking must not matter);
 * each backup must read exactly the chunks marked, store only them, verify, and restore (into a new
 * file and over the newer image) to exactly the image of its moment, byte for byte. Then damage: a
 * byte flipped in a stored chunk (verify and restore name the chunk; the restore leaves the first
 * chunk zeroed), in a map (the manifest catches it), a hole of T.img written (ignored, as it holds
 * nothing a restore reads); a wrong-sized output refused; a file base for an image backup refused;
 * the map parser alone.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/backup-internal.h"
#include "backup/backup.h"
#include "common/macro.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

#define CHUNK 16384u
#define N_CHUNKS 300u /* and a last, shorter chunk */
#define SIZE ((uint64_t) N_CHUNKS * CHUNK + 4096u)
#define SHADOW_ID "0b9d4a4e-1c2f-4e5d-9a8b-7c6d5e4f3a21"

static char base[256];
static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static char *P(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *P(const char *fmt, ...) {
        static char bufs[8][512];
        static int k;
        char *b = bufs[k++ % 8];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b, sizeof(bufs[0]), fmt, ap);
        va_end(ap);
        return b;
}

static uint8_t *read_all(const char *path, uint64_t *ret_len) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        struct stat st;
        CHECK(fstat(fd, &st) == 0);
        uint8_t *b = malloc((size_t) st.st_size + 1);
        CHECK(b);
        CHECK(pread(fd, b, (size_t) st.st_size, 0) == st.st_size);
        close(fd);
        *ret_len = (uint64_t) st.st_size;
        return b;
}

static void write_at(const char *path, const void *p, size_t n, uint64_t off) {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        CHECK(fd >= 0);
        CHECK(pwrite(fd, p, n, (off_t) off) == (ssize_t) n);
        close(fd);
}

static void fill_chunk(uint8_t *img, uint64_t c) {
        size_t len = (size_t) MIN((uint64_t) CHUNK, SIZE - c * CHUNK);
        for (size_t i = 0; i < len; i += 8) {
                uint64_t v = next();
                memcpy(img + c * CHUNK + i, &v, MIN((size_t) 8, len - i));
        }
}

static void save(const char *path, const uint8_t *img) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        CHECK(fd >= 0);
        CHECK(write(fd, img, SIZE) == (ssize_t) SIZE);
        close(fd);
}

static int backup(const char *dir, bkp_type type, const char *basedir, const char *image, const uint8_t *changed,
                  struct bkp_stats *st, char *err) {
        struct bkp_target t = { .name = "vol", .root = image, .origin = "vol", .size = SIZE, .chunk_size = CHUNK,
                                .shadow_id = SHADOW_ID, .changed = changed };
        struct bkp_write_opts o = { .dir = dir, .type = type, .image = true, .base_dir = basedir, .targets = &t,
                                    .n_targets = 1 };
        err[0] = 0;
        return bkp_write(&o, st, NULL, err);
}

static int restore(const char *dir, const char *out, char *err) {
        struct bkp_restore_opts o = { .dir = dir, .target = "vol", .root = out };
        err[0] = 0;
        return bkp_restore_image(&o, err);
}

static void check_restores(const char *dir, const uint8_t *img, const char *over) {
        char err[BKP_ERR_MAX];
        const char *out = P("%s/out-%d", base, (int) (next() % 100000));
        int r = bkp_verify(dir, NULL, NULL, err);
        if (r < 0)
                fprintf(stderr, "verify %s: %s\n", dir, err);
        CHECK(r == 0);
        r = restore(dir, out, err);
        if (r < 0)
                fprintf(stderr, "restore %s: %s\n", dir, err);
        CHECK(r == 0);
        uint64_t len;
        uint8_t *got = read_all(out, &len);
        CHECK(len == SIZE && memcmp(got, img, SIZE) == 0);
        free(got);
        unlink(out);
        /* Over an existing image of the right size (another moment's). */
        if (over) {
                CHECK(restore(dir, over, err) == 0);
                got = read_all(over, &len);
                CHECK(len == SIZE && memcmp(got, img, SIZE) == 0);
                free(got);
        }
}

/* The number of chunk lines in DIR's map. */
static size_t map_lines(const char *dir) {
        uint64_t len;
        char *m = (char *) read_all(P("%s/vol.map", dir), &len);
        size_t n = 0;
        for (uint64_t i = 0; i < len; i++)
                n += m[i] == '\n';
        free(m);
        return n - 2;
}

static void mark(uint8_t *bm, uint64_t c) {
        bm[c / 8] |= (uint8_t) (1u << (c % 8));
}

static void test_chain(void) {
        char err[BKP_ERR_MAX];
        struct bkp_stats st;
        const uint64_t n = N_CHUNKS + 1;
        uint8_t *img = calloc(1, SIZE);
        CHECK(img);
        size_t nonzero = 0;
        for (uint64_t c = 0; c < n; c++)
                if (c % 5 != 3) { /* every fifth chunk is zeros */
                        fill_chunk(img, c);
                        nonzero++;
                }
        char *live = strdup(P("%s/live.img", base)), *older = strdup(P("%s/older.img", base));
        save(live, img);
        uint8_t *moment0 = malloc(SIZE);
        CHECK(moment0);
        memcpy(moment0, img, SIZE);

        char *full = strdup(P("%s/full", base));
        CHECK(backup(full, BKP_FULL, NULL, live, NULL, &st, err) == 0);
        CHECK(st.bytes_read == SIZE && st.entries == n && st.entries_stored == nonzero);
        CHECK(map_lines(full) == nonzero);
        check_restores(full, moment0, NULL);

        /* Changes: rewrite 7 chunks, zero one, fill one that was zero; mark them and a false positive. */
        uint8_t bm[(N_CHUNKS + 1 + 7) / 8] = {};
        static const uint64_t rewritten[] = { 0, 1, 17, 18, 100, 299, N_CHUNKS };
        for (size_t i = 0; i < ELEMENTSOF(rewritten); i++) {
                fill_chunk(img, rewritten[i]);
                mark(bm, rewritten[i]);
        }
        memset(img + 50 * CHUNK, 0, CHUNK);
        mark(bm, 50);
        fill_chunk(img, 8); /* 8 % 5 == 3: was zeros */
        mark(bm, 8);
        mark(bm, 200); /* unchanged */
        save(live, img);
        uint8_t *moment1 = malloc(SIZE);
        CHECK(moment1);
        memcpy(moment1, img, SIZE);

        char *inc1 = strdup(P("%s/inc1", base));
        CHECK(backup(inc1, BKP_INCREMENTAL, full, live, bm, &st, err) == 0);
        uint64_t marked_bytes = 10 * (uint64_t) CHUNK + (SIZE - (uint64_t) N_CHUNKS * CHUNK) - CHUNK;
        CHECK(st.bytes_read == marked_bytes);
        CHECK(st.entries_stored == 10 && map_lines(inc1) == 10);
        check_restores(inc1, moment1, NULL);

        /* An incremental needs the changed chunks. */
        CHECK(backup(P("%s/nobm", base), BKP_INCREMENTAL, full, live, NULL, &st, err) == -EINVAL);
        CHECK(access(P("%s/nobm", base), F_OK) < 0);

        /* A second round of changes; an incremental on inc1 and a differential on full. */
        uint8_t bm2[sizeof(bm)] = {}, bmd[sizeof(bm)];
        memcpy(bmd, bm, sizeof(bm));
        for (uint64_t c = 120; c < 140; c++) {
                fill_chunk(img, c);
                mark(bm2, c);
                mark(bmd, c);
        }
        save(live, img);
        char *inc2 = strdup(P("%s/inc2", base)), *diff = strdup(P("%s/diff", base));
        CHECK(backup(inc2, BKP_INCREMENTAL, inc1, live, bm2, &st, err) == 0);
        CHECK(st.bytes_read == 20 * (uint64_t) CHUNK && st.entries_stored == 20);
        CHECK(backup(diff, BKP_DIFFERENTIAL, full, live, bmd, &st, err) == 0);
        CHECK(st.entries_stored == 30);
        /* A differential on an incremental is refused. */
        CHECK(backup(P("%s/baddiff", base), BKP_DIFFERENTIAL, inc1, live, bmd, &st, err) == -EINVAL);

        /* Each restores its moment, also over an image of another moment. */
        save(older, moment0);
        check_restores(inc2, img, older);
        check_restores(diff, img, NULL);
        check_restores(inc1, moment1, older);
        check_restores(full, moment0, older);

        /* A log image backup is refused. */
        CHECK(backup(P("%s/log", base), BKP_LOG, inc2, live, bm2, &st, err) == -EINVAL);

        /* Damage: a byte of a stored chunk of inc1 (chunk 100). */
        const char *inc1_img = P("%s/vol.img", inc1);
        uint8_t byte;
        int fd = open(inc1_img, O_RDWR | O_CLOEXEC);
        CHECK(fd >= 0 && pread(fd, &byte, 1, 100 * CHUNK + 77) == 1);
        byte ^= 0x20;
        CHECK(pwrite(fd, &byte, 1, 100 * CHUNK + 77) == 1);
        CHECK(bkp_verify(inc2, NULL, NULL, err) == -EBADMSG);
        CHECK(strstr(err, "chunk 100 ") && strstr(err, "inc1"));
        const char *out = P("%s/damaged-out", base);
        CHECK(restore(inc2, out, err) == -EBADMSG);
        CHECK(strstr(err, "chunk 100 "));
        uint64_t len;
        uint8_t *got = read_all(out, &len);
        CHECK(len == SIZE && got[0] == 0 && memcmp(got, got + 1, CHUNK - 1) == 0);
        free(got);
        /* Chunk 100 is not needed by diff's restore (diff stores it itself): it still works. */
        check_restores(diff, img, NULL);
        byte ^= 0x20;
        CHECK(pwrite(fd, &byte, 1, 100 * CHUNK + 77) == 1);
        /* A hole of inc1's image written: nothing reads it. */
        CHECK(pwrite(fd, "x", 1, 250 * CHUNK) == 1);
        close(fd);
        CHECK(bkp_verify(inc2, NULL, NULL, err) == 0);

        /* A map changed: the manifest names it. */
        const char *map = P("%s/vol.map", inc2);
        CHECK(chmod(map, 0600) == 0);
        write_at(map, "8", 1, strlen("lvss-image-map 1\n") + 3); /* 4919296 -> 4918296 */
        CHECK(bkp_verify(inc2, NULL, NULL, err) == -EBADMSG && strstr(err, "vol.map"));

        /* A wrong-sized output. */
        int wfd = open(P("%s/small", base), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        CHECK(wfd >= 0 && ftruncate(wfd, 4096) == 0);
        close(wfd);
        CHECK(restore(full, P("%s/small", base), err) == -EINVAL && strstr(err, "size"));

        /* A target the backup does not have. */
        CHECK(bkp_restore_image(&(struct bkp_restore_opts){ .dir = full, .target = "nope", .root = out }, err) ==
              -EINVAL);

        free(live);
        free(older);
        free(full);
        free(inc1);
        free(inc2);
        free(diff);
        free(img);
        free(moment0);
        free(moment1);
}

static void test_map_parser(void) {
        static const char *const good = "lvss-image-map 1\n16384 4096\n0 "
                                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n3 "
                                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n";
        struct bkp_image_map m;
        size_t line;
        CHECK(bkp_image_map_parse(good, strlen(good), &m, &line) == 0);
        CHECK(m.n == 2 && m.index[1] == 3 && m.size == 16384 && m.chunk_size == 4096);
        bkp_image_map_release(&m);
        static const char *const bad[] = {
                "lvss-image-map 2\n16384 4096\n",
                "lvss-image-map 1\n16384 4095\n",
                "lvss-image-map 1\n016384 4096\n",
                "lvss-image-map 1\n16384 4096\n4 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
                ("lvss-image-map 1\n16384 4096\n1 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n0 "
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"),
                "lvss-image-map 1\n16384 4096\n1 E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\n",
                "lvss-image-map 1\n16384 4096\n1 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                "lvss-image-map 1\n0 4096\n",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                line = 0;
                CHECK(bkp_image_map_parse(bad[i], strlen(bad[i]), &m, &line) == -EBADMSG);
                CHECK(line >= 1);
        }
}

static void test_kinds(void) {
        /* A file backup cannot be the base of an image backup. */
        char err[BKP_ERR_MAX];
        const char *tree = P("%s/tree", base), *files = P("%s/files", base);
        CHECK(mkdir(tree, 0755) == 0);
        struct bkp_target t = { .name = "vol", .root = tree };
        struct bkp_write_opts o = { .dir = files, .type = BKP_FULL, .targets = &t, .n_targets = 1 };
        CHECK(bkp_write(&o, NULL, NULL, err) == 0);
        uint8_t bm[(N_CHUNKS + 1 + 7) / 8] = {};
        struct bkp_stats st;
        CHECK(backup(P("%s/mixed", base), BKP_INCREMENTAL, files, P("%s/live.img", base), bm, &st, err) ==
              -EINVAL);
        CHECK(strstr(err, "same kind"));
        CHECK(restore(files, P("%s/x.img", base), err) == -EINVAL && strstr(err, "not an image backup"));

        /* The BCD of an image backup keeps its geometry and shadow. */
        struct bkp_document *d = NULL;
        CHECK(bkp_read_document(P("%s/full", base), &d, err) == 0);
        CHECK(d->image && d->n_targets == 1 && d->targets[0].size == SIZE && d->targets[0].chunk_size == CHUNK &&
              strcmp(d->targets[0].shadow_id, SHADOW_ID) == 0);
        bkp_document_free(d);
}

int main(void) {
        setvbuf(stdout, NULL, _IONBF, 0);
        snprintf(base, sizeof(base), "/var/tmp/lvss-test-image.XXXXXX");
        CHECK(mkdtemp(base));
        test_map_parser();
        test_chain();
        test_kinds();
        CHECK(system(P("rm -rf '%s'", base)) == 0);
        printf("test-image: ok\n");
        return 0;
}
