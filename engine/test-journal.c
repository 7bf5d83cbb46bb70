/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The meta file format: superblock round trip and every rejection; frames
 * replayed in order; a torn last frame is recognised as torn; a damaged frame
 * followed by a valid one is reported as damage; malformed records make their
 * whole frame invalid.
 */

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/journal.h"

#define CHECK(x)                                                                                            \
        do {                                                                                                \
                if (!(x)) {                                                                                 \
                        fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #x);               \
                        abort();                                                                            \
                }                                                                                           \
        } while (0)

struct collect {
        struct jr_record r[64];
        int n;
};

static int collect_record(void *ud, const struct jr_record *r) {
        struct collect *c = ud;
        if (c->n < 64)
                c->r[c->n] = *r;
        c->n++;
        return 0;
}

static void test_super(void) {
        uint8_t buf[JR_SUPER_SIZE];
        struct jr_super s = { .version = JR_VERSION, .size = 1 << 30, .chunk_size = 65536, .first_seq = 7 };
        strcpy(s.image, "/dev/loop7");
        journal_encode_super(&s, buf);

        struct jr_super t;
        CHECK(journal_parse_super(buf, sizeof buf, &t) == 0);
        CHECK(t.size == s.size && t.chunk_size == s.chunk_size && t.first_seq == 7);
        CHECK(strcmp(t.image, "/dev/loop7") == 0);

        CHECK(journal_parse_super(buf, 100, &t) == -ENODATA);

        uint8_t bad[JR_SUPER_SIZE];
        memcpy(bad, buf, sizeof bad);
        bad[100] ^= 1; /* flipped bit anywhere: checksum */
        CHECK(journal_parse_super(bad, sizeof bad, &t) == -EBADMSG);
        memcpy(bad, buf, sizeof bad);
        bad[0] = 'X';
        CHECK(journal_parse_super(bad, sizeof bad, &t) == -EBADMSG);

        struct jr_super v2 = s;
        v2.version = 2;
        journal_encode_super(&v2, bad);
        CHECK(journal_parse_super(bad, sizeof bad, &t) == -EPROTONOSUPPORT);

        struct jr_super odd = s;
        odd.chunk_size = 3000;
        journal_encode_super(&odd, bad);
        CHECK(journal_parse_super(bad, sizeof bad, &t) == -ERANGE);
        odd = s;
        odd.size = 1000;
        journal_encode_super(&odd, bad);
        CHECK(journal_parse_super(bad, sizeof bad, &t) == -ERANGE);
}

/* Builds a meta file with N frames of two records each; returns its length. */
static size_t build(uint8_t *file, size_t cap, int frames, size_t *frame_off) {
        struct jr_super s = { .version = JR_VERSION, .size = 1 << 20, .chunk_size = 4096, .first_seq = 1 };
        journal_encode_super(&s, file);
        size_t off = JR_SUPER_SIZE;
        struct jr_frame f = {};
        for (int i = 0; i < frames; i++) {
                struct jr_record a = { .type = JR_SNAP_CREATE,
                                       .id = (uint32_t) i + 1,
                                       .flags = JR_SNAP_F_PERSISTENT,
                                       .created_ns = 42 };
                snprintf(a.label, sizeof a.label, "snap-%d", i);
                struct jr_record b = { .type = JR_EXCEPTION,
                                       .chunk = (uint64_t) i,
                                       .lo = 1,
                                       .hi = (uint32_t) i + 1,
                                       .slot = (uint64_t) i };
                CHECK(journal_frame_add(&f, &a) == 0);
                CHECK(journal_frame_add(&f, &b) == 0);
                journal_frame_seal(&f, (uint64_t) i + 1);
                CHECK(off + f.len <= cap);
                frame_off[i] = off;
                memcpy(file + off, f.buf, f.len);
                off += f.len;
                journal_frame_reset(&f);
        }
        journal_frame_release(&f);
        return off;
}

static void test_frames(void) {
        static uint8_t file[JR_SUPER_SIZE + 65536];
        size_t offs[8];
        size_t len = build(file, sizeof file, 5, offs);
        struct collect c = {};
        struct jr_scan sc;

        CHECK(journal_scan(file, len, 1, collect_record, &c, &sc) == 0);
        CHECK(c.n == 10 && sc.frames == 5 && sc.end == len && sc.next_seq == 6);
        CHECK(!sc.torn && !sc.damaged);
        CHECK(c.r[0].type == JR_SNAP_CREATE && c.r[0].id == 1 && strcmp(c.r[0].label, "snap-0") == 0);
        CHECK(c.r[9].type == JR_EXCEPTION && c.r[9].chunk == 4 && c.r[9].hi == 5);

        /* Wrong first sequence: nothing replays, and the frames that follow are damage. */
        c.n = 0;
        CHECK(journal_scan(file, len, 2, collect_record, &c, &sc) == 0);
        CHECK(c.n == 0 && sc.damaged);

        /* A torn last frame: cut in the middle. */
        c.n = 0;
        CHECK(journal_scan(file, offs[4] + 20, 1, collect_record, &c, &sc) == 0);
        CHECK(c.n == 8 && sc.end == offs[4] && sc.torn && !sc.damaged);

        /* The last frame's payload torn (a bit flipped): torn, not damage. */
        static uint8_t copy[sizeof file];
        memcpy(copy, file, len);
        copy[offs[4] + 30] ^= 0x40;
        c.n = 0;
        CHECK(journal_scan(copy, len, 1, collect_record, &c, &sc) == 0);
        CHECK(c.n == 8 && sc.torn && !sc.damaged);

        /* A middle frame damaged: later valid frames prove records were lost. */
        memcpy(copy, file, len);
        copy[offs[2] + 30] ^= 0x40;
        c.n = 0;
        CHECK(journal_scan(copy, len, 1, collect_record, &c, &sc) == 0);
        CHECK(c.n == 4 && sc.damaged && !sc.torn && sc.end == offs[2]);

        /* Trailing zeros are neither torn nor damage. */
        memcpy(copy, file, len);
        memset(copy + len, 0, 4096);
        c.n = 0;
        CHECK(journal_scan(copy, len + 4096, 1, collect_record, &c, &sc) == 0);
        CHECK(c.n == 10 && !sc.torn && !sc.damaged);
}

static void test_bad_records(void) {
        static uint8_t file[JR_SUPER_SIZE + 4096];
        struct jr_super s = { .version = JR_VERSION, .size = 1 << 20, .chunk_size = 4096, .first_seq = 1 };
        journal_encode_super(&s, file);
        struct jr_frame f = {};
        struct jr_record r = { .type = JR_EXCEPTION, .chunk = 1, .lo = 3, .hi = 2, .slot = 0 }; /* lo > hi */
        CHECK(journal_frame_add(&f, &r) == 0);
        journal_frame_seal(&f, 1);
        memcpy(file + JR_SUPER_SIZE, f.buf, f.len);
        struct collect c = {};
        struct jr_scan sc;
        CHECK(journal_scan(file, JR_SUPER_SIZE + f.len, 1, collect_record, &c, &sc) == 0);
        CHECK(c.n == 0 && sc.frames == 0 && sc.torn);

        struct jr_record unknown = { .type = (enum jr_type) 99 };
        CHECK(journal_frame_add(&f, &unknown) == -EINVAL);
        journal_frame_release(&f);
}

int main(void) {
        test_super();
        test_frames();
        test_bad_records();
        printf("journal ok\n");
        return 0;
}
