/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * libFuzzer target for the meta file parser (engine/journal.c). The input is
 * a whole DIR/meta file: the superblock is parsed, then the frames are
 * scanned with the superblock's first sequence (or 1 if it did not parse).
 * Besides memory safety (ASan/UBSan), it checks two properties and aborts if
 * either breaks:
 *   - a superblock that parses, encoded again, parses to the same values;
 *   - the records a scan returns, encoded again into one frame, scan back to
 *     the same records (a frame is all or nothing, so none may be lost).
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "engine/journal.h"

#define MAX_RECORDS 65536u

struct collect {
        struct jr_record *records;
        size_t n, cap;
};

static int collect_record(void *userdata, const struct jr_record *r) {
        struct collect *c = userdata;

        if (c->n >= MAX_RECORDS)
                return 0; /* keep scanning, stop remembering */
        if (c->n == c->cap) {
                size_t cap = c->cap ? c->cap * 2 : 64;
                struct jr_record *p = realloc(c->records, cap * sizeof *p);
                if (!p)
                        abort();
                c->records = p;
                c->cap = cap;
        }
        c->records[c->n++] = *r;
        return 0;
}

static bool record_equal(const struct jr_record *a, const struct jr_record *b) {
        if (a->type != b->type)
                return false;
        switch (a->type) {
        case JR_SNAP_CREATE:
                return a->id == b->id && a->flags == b->flags && a->created_ns == b->created_ns &&
                       strncmp(a->label, b->label, JR_LABEL_SIZE) == 0;
        case JR_SNAP_DELETE:
        case JR_NEXT_ID:
        case JR_SNAP_INVALID:
                return a->id == b->id;
        case JR_EXCEPTION:
                return a->chunk == b->chunk && a->lo == b->lo && a->hi == b->hi && a->slot == b->slot;
        case JR_LIMIT:
                return a->diff_max == b->diff_max && a->policy == b->policy;
        }
        return false;
}

static void check_super_roundtrip(const struct jr_super *s) {
        static uint8_t block[JR_SUPER_SIZE];
        struct jr_super again;

        journal_encode_super(s, block);
        if (journal_parse_super(block, sizeof block, &again) != 0)
                abort();
        if (again.version != s->version || again.size != s->size || again.chunk_size != s->chunk_size ||
            again.flags != s->flags || again.first_seq != s->first_seq || strcmp(again.image, s->image) != 0)
                abort();
}

/* Re-encodes the records into one frame after a zero superblock and scans it back. */
static void check_records_roundtrip(const struct collect *c) {
        struct jr_frame f = {};
        struct collect back = {};
        struct jr_scan scan;
        uint8_t *file;

        if (c->n == 0 || c->n >= MAX_RECORDS)
                return;
        for (size_t i = 0; i < c->n; i++)
                if (journal_frame_add(&f, &c->records[i]) < 0) {
                        journal_frame_release(&f);
                        return; /* over JR_FRAME_MAX: nothing to compare */
                }
        journal_frame_seal(&f, 7);

        file = calloc(1, JR_SUPER_SIZE + f.len);
        if (!file)
                abort();
        memcpy(file + JR_SUPER_SIZE, f.buf, f.len);
        if (journal_scan(file, JR_SUPER_SIZE + f.len, 7, collect_record, &back, &scan) != 0)
                abort();
        if (scan.frames != 1 || scan.damaged || scan.torn || scan.end != JR_SUPER_SIZE + f.len ||
            back.n != c->n)
                abort();
        for (size_t i = 0; i < c->n; i++)
                if (!record_equal(&c->records[i], &back.records[i]))
                        abort();
        free(file);
        free(back.records);
        journal_frame_release(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct collect c = {};
        struct jr_super super;
        struct jr_scan scan;
        uint64_t first_seq = 1;
        uint8_t *copy;
        int r;

        /* An exact-size heap copy, so that ASan sees any read past the end. */
        copy = malloc(size ? size : 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);

        r = journal_parse_super(copy, size, &super);
        if (r == 0) {
                check_super_roundtrip(&super);
                first_seq = super.first_seq;
        }

        r = journal_scan(copy, size, first_seq, collect_record, &c, &scan);
        if (r == 0) {
                if (scan.end < JR_SUPER_SIZE || scan.end > size || (scan.torn && scan.damaged))
                        abort();
                check_records_roundtrip(&c);
        }

        free(c.records);
        free(copy);
        return 0;
}
