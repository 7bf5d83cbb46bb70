/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Encoder and parser of the meta file (layout in journal.h). Everything is
 * explicit little-endian byte access, so the parser is safe on any input:
 * every length is checked against the buffer before it is used.
 */

#include "engine/journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"
#include "common/macro.h"

#define SUPER_CRC_OFF (JR_SUPER_SIZE - 4)
#define SUPER_IMAGE_OFF 40u
#define SUPER_CKPT_OFF (SUPER_IMAGE_OFF + JR_PATH_MAX)

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v) {
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] | p[1] << 8);
}
static uint32_t get32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}
static uint64_t get64(const uint8_t *p) {
        return (uint64_t) get32(p) | (uint64_t) get32(p + 4) << 32;
}

void journal_encode_super(const struct jr_super *s, void *buf) {
        uint8_t *p = buf;
        memset(p, 0, JR_SUPER_SIZE);
        memcpy(p, JR_MAGIC, 8);
        put32(p + 8, s->version);
        put32(p + 12, JR_SUPER_SIZE);
        put64(p + 16, s->size);
        put32(p + 24, s->chunk_size);
        put32(p + 28, s->flags);
        put64(p + 32, s->first_seq);
        size_t n = strnlen(s->image, JR_PATH_MAX - 1);
        memcpy(p + SUPER_IMAGE_OFF, s->image, n);
        put64(p + SUPER_CKPT_OFF, s->checkpoint_end);
        put32(p + SUPER_CRC_OFF, crc32c(0, p, JR_SUPER_SIZE));
}

int journal_parse_super(const void *buf, size_t len, struct jr_super *ret) {
        const uint8_t *p = buf;
        struct jr_super s = {};

        if (len < JR_SUPER_SIZE)
                return -ENODATA;
        if (memcmp(p, JR_MAGIC, 8) != 0)
                return -EBADMSG;
        uint8_t copy[JR_SUPER_SIZE];
        memcpy(copy, p, JR_SUPER_SIZE);
        put32(copy + SUPER_CRC_OFF, 0);
        if (crc32c(0, copy, JR_SUPER_SIZE) != get32(p + SUPER_CRC_OFF))
                return -EBADMSG;
        s.version = get32(p + 8);
        if (s.version != JR_VERSION)
                return -EPROTONOSUPPORT;
        if (get32(p + 12) != JR_SUPER_SIZE)
                return -ERANGE;
        s.size = get64(p + 16);
        s.chunk_size = get32(p + 24);
        s.flags = get32(p + 28);
        s.first_seq = get64(p + 32);
        if (s.chunk_size < 4096 || s.chunk_size > 1024 * 1024 || !IS_POWER_OF_2(s.chunk_size))
                return -ERANGE;
        if (s.size == 0 || s.size % 512 != 0 || s.size > (UINT64_C(1) << 60))
                return -ERANGE;
        if (s.size / s.chunk_size >= UINT32_MAX)
                return -ERANGE;
        if (s.flags != 0 || s.first_seq == 0)
                return -ERANGE;
        s.checkpoint_end = get64(p + SUPER_CKPT_OFF);
        if (s.checkpoint_end != 0 &&
            (s.checkpoint_end < JR_SUPER_SIZE || s.checkpoint_end > (UINT64_C(1) << 40)))
                return -ERANGE;
        const char *img = (const char *) p + SUPER_IMAGE_OFF;
        size_t n = strnlen(img, JR_PATH_MAX);
        if (n == JR_PATH_MAX)
                return -ERANGE;
        memcpy(s.image, img, n);
        s.image[n] = 0;
        *ret = s;
        return 0;
}

/* Body sizes per record type. */
static size_t body_size(enum jr_type t) {
        switch (t) {
        case JR_SNAP_CREATE:
                return 4 + 4 + 8 + JR_LABEL_SIZE;
        case JR_SNAP_DELETE:
        case JR_NEXT_ID:
        case JR_SNAP_INVALID:
                return 4;
        case JR_EXCEPTION:
                return 8 + 4 + 4 + 8;
        case JR_LIMIT:
                return 8 + 4;
        }
        return 0;
}

static int frame_grow(struct jr_frame *f, size_t need) {
        if (f->len + need <= f->cap)
                return 0;
        size_t cap = MAX(f->cap * 2, f->len + need + 4096);
        uint8_t *b = realloc(f->buf, cap);
        if (!b)
                return -ENOMEM;
        f->buf = b;
        f->cap = cap;
        return 0;
}

int journal_frame_add(struct jr_frame *f, const struct jr_record *r) {
        size_t body = body_size(r->type);
        if (body == 0)
                return -EINVAL;
        size_t rec = (4 + body + 7) & ~(size_t) 7;
        int k;

        if (f->len == 0) {
                k = frame_grow(f, JR_FRAME_HEADER);
                if (k < 0)
                        return k;
                memset(f->buf, 0, JR_FRAME_HEADER);
                f->len = JR_FRAME_HEADER;
        }
        if (f->len + rec > JR_FRAME_MAX)
                return -E2BIG;
        k = frame_grow(f, rec);
        if (k < 0)
                return k;

        uint8_t *p = f->buf + f->len;
        memset(p, 0, rec);
        put16(p, (uint16_t) r->type);
        put16(p + 2, (uint16_t) body);
        uint8_t *b = p + 4;
        switch (r->type) {
        case JR_SNAP_CREATE:
                put32(b, r->id);
                put32(b + 4, r->flags);
                put64(b + 8, r->created_ns);
                memcpy(b + 16, r->label, strnlen(r->label, JR_LABEL_SIZE - 1));
                break;
        case JR_SNAP_DELETE:
        case JR_NEXT_ID:
        case JR_SNAP_INVALID:
                put32(b, r->id);
                break;
        case JR_EXCEPTION:
                put64(b, r->chunk);
                put32(b + 8, r->lo);
                put32(b + 12, r->hi);
                put64(b + 16, r->slot);
                break;
        case JR_LIMIT:
                put64(b, r->diff_max);
                put32(b + 8, r->policy);
                break;
        }
        f->len += rec;
        f->n_records++;
        return 0;
}

void journal_frame_seal(struct jr_frame *f, uint64_t seq) {
        uint8_t *p = f->buf;
        put32(p, JR_FRAME_MAGIC);
        put32(p + 4, (uint32_t) (f->len - JR_FRAME_HEADER));
        put64(p + 8, seq);
        put32(p + 16, 0);
        put32(p + 20, 0);
        put32(p + 16, crc32c(0, p, f->len));
}

void journal_frame_reset(struct jr_frame *f) {
        f->len = 0;
        f->n_records = 0;
}

void journal_frame_release(struct jr_frame *f) {
        free(f->buf);
        *f = (struct jr_frame){};
}

/* Checks the frame at OFF; returns its total length, or 0 if it is not a valid frame. */
static size_t frame_check(const uint8_t *buf, size_t len, size_t off, uint64_t *ret_seq) {
        if (off > len || len - off < JR_FRAME_HEADER)
                return 0;
        const uint8_t *p = buf + off;
        if (get32(p) != JR_FRAME_MAGIC || get32(p + 20) != 0)
                return 0;
        uint32_t plen = get32(p + 4);
        if (plen % 8 != 0 || plen > JR_FRAME_MAX || plen > len - off - JR_FRAME_HEADER)
                return 0;
        uint32_t want = get32(p + 16);
        uint8_t hdr[JR_FRAME_HEADER];
        memcpy(hdr, p, JR_FRAME_HEADER);
        put32(hdr + 16, 0);
        uint32_t crc = crc32c(0, hdr, JR_FRAME_HEADER);
        crc = crc32c(crc, p + JR_FRAME_HEADER, plen);
        if (crc != want)
                return 0;
        *ret_seq = get64(p + 8);
        return JR_FRAME_HEADER + plen;
}

/* Decodes the records of a checked frame's payload; -EBADMSG if one is malformed. */
static int frame_records(const uint8_t *p, size_t plen, int (*record)(void *, const struct jr_record *),
                         void *userdata, bool dry) {
        size_t off = 0;
        while (off < plen) {
                if (plen - off < 4)
                        return -EBADMSG;
                struct jr_record r = { .type = get16(p + off) };
                size_t body = get16(p + off + 2);
                size_t want = body_size(r.type);
                if (want == 0 || body != want)
                        return -EBADMSG;
                size_t rec = (4 + body + 7) & ~(size_t) 7;
                if (rec > plen - off)
                        return -EBADMSG;
                const uint8_t *b = p + off + 4;
                switch (r.type) {
                case JR_SNAP_CREATE:
                        r.id = get32(b);
                        r.flags = get32(b + 4);
                        r.created_ns = get64(b + 8);
                        memcpy(r.label, b + 16, JR_LABEL_SIZE);
                        if (r.label[JR_LABEL_SIZE - 1] != 0)
                                return -EBADMSG;
                        break;
                case JR_SNAP_DELETE:
                case JR_NEXT_ID:
                case JR_SNAP_INVALID:
                        r.id = get32(b);
                        break;
                case JR_EXCEPTION:
                        r.chunk = get64(b);
                        r.lo = get32(b + 8);
                        r.hi = get32(b + 12);
                        r.slot = get64(b + 16);
                        if (r.lo == 0 || r.lo > r.hi)
                                return -EBADMSG;
                        break;
                case JR_LIMIT:
                        r.diff_max = get64(b);
                        r.policy = get32(b + 8);
                        if (r.policy > 1)
                                return -EBADMSG;
                        break;
                }
                if (!dry) {
                        int k = record(userdata, &r);
                        if (k < 0)
                                return k;
                }
                off += rec;
        }
        return 0;
}

int journal_scan(const void *buf, size_t len, uint64_t first_seq,
                 int (*record)(void *userdata, const struct jr_record *r), void *userdata,
                 struct jr_scan *ret) {
        const uint8_t *p = buf;
        struct jr_scan s = { .end = JR_SUPER_SIZE, .next_seq = first_seq };

        if (len < JR_SUPER_SIZE)
                return -ENODATA;

        for (;;) {
                uint64_t seq = 0;
                size_t flen = frame_check(p, len, s.end, &seq);
                if (flen == 0 || seq != s.next_seq)
                        break;
                /* Validate the whole frame before applying any of it: a frame is all or nothing. */
                if (frame_records(p + s.end + JR_FRAME_HEADER, flen - JR_FRAME_HEADER, record, userdata,
                                  true) < 0)
                        break;
                int k = frame_records(p + s.end + JR_FRAME_HEADER, flen - JR_FRAME_HEADER, record, userdata,
                                      false);
                if (k < 0)
                        return k;
                s.end += flen;
                s.next_seq++;
                s.frames++;
        }

        /* Anything after the end: a torn last commit, or damage if a later valid frame exists. */
        for (size_t off = s.end; off < len; off++)
                if (p[off] != 0) {
                        s.torn = true;
                        break;
                }
        /* Checksums are only run where the magic matches, and at most for a bounded number of
         * candidates, so a crafted file cannot make the scan quadratic. */
        unsigned candidates = 0;
        if (s.torn)
                for (size_t off = s.end + 8; off + JR_FRAME_HEADER <= len && candidates < 4096; off += 8) {
                        uint64_t seq;
                        if (get32(p + off) != JR_FRAME_MAGIC)
                                continue;
                        candidates++;
                        if (frame_check(p, len, off, &seq) && seq > s.next_seq - 1) {
                                s.damaged = true;
                                s.torn = false;
                                break;
                        }
                }
        *ret = s;
        return 0;
}
