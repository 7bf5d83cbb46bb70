/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The byte layout of a volume's DIR/meta file, and its encoder and parser.
 * The parser takes untrusted bytes (a fuzz target drives it): it never reads
 * outside the buffer it is given and rejects any value out of range.
 *
 *   offset 0     superblock, JR_SUPER_SIZE bytes, little-endian:
 *                  magic "LVSSMETA" | u32 version | u32 super_size
 *                  u64 volume size | u32 chunk size | u32 flags
 *                  u64 first frame sequence | char image[JR_PATH_MAX] (NUL-terminated,
 *                  empty: DIR/image) | u64 checkpoint end | ... zero ... | u32 crc32c of the
 *                  block with this field 0
 *   offset 8192  frames, back to back, each 8-byte aligned:
 *                  u32 magic "LVJF" | u32 payload length | u64 sequence (first: super's, then +1)
 *                  u32 crc32c of header (crc field 0) and payload | u32 zero
 *                  payload: records, each u16 type | u16 length | body, padded to 8 bytes
 *
 * A frame is the unit of commit: it is written whole and synced. After a crash
 * the last frame may be torn; a damaged frame followed by any valid frame
 * cannot come from a torn commit, and is reported as damage. The frames up to
 * the checkpoint end were written before the file was renamed into place, so
 * they cannot be torn at all: a bad frame before it is damage (a file that
 * ends before it is a journal the engine emptied on purpose).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JR_MAGIC "LVSSMETA"
#define JR_VERSION 1u
#define JR_SUPER_SIZE 8192u
#define JR_PATH_MAX 4096u
#define JR_FRAME_MAGIC 0x464a564cu /* "LVJF" little-endian */
#define JR_FRAME_HEADER 24u
#define JR_FRAME_MAX (64u * 1024u * 1024u)
#define JR_LABEL_SIZE 64u

enum jr_type {
        JR_SNAP_CREATE = 1, /* id, flags (JR_SNAP_F_*), created_ns, label */
        JR_SNAP_DELETE = 2, /* id */
        JR_EXCEPTION = 3, /* chunk, lo, hi, slot: chunk's old data for snapshots lo..hi is in slot */
        JR_LIMIT = 4, /* diff_max, policy */
        JR_NEXT_ID = 5, /* the next snapshot id to hand out (id) */
        JR_SNAP_INVALID = 6 /* id: snapshot known damaged */
};

#define JR_SNAP_F_PERSISTENT 1u

struct jr_super {
        uint32_t version;
        uint64_t size;
        uint32_t chunk_size;
        uint32_t flags;
        uint64_t first_seq;
        char image[JR_PATH_MAX];
        uint64_t checkpoint_end; /* offset past the frames written with the superblock */
};

struct jr_record {
        enum jr_type type;
        uint32_t id; /* SNAP_*, NEXT_ID */
        uint32_t flags; /* SNAP_CREATE */
        uint64_t created_ns;
        char label[JR_LABEL_SIZE];
        uint64_t chunk; /* EXCEPTION */
        uint32_t lo, hi;
        uint64_t slot;
        uint64_t diff_max; /* LIMIT */
        uint32_t policy;
};

/* Encodes the superblock into BUF (JR_SUPER_SIZE bytes). */
void journal_encode_super(const struct jr_super *s, void *buf);

/* Parses a superblock: -EBADMSG for a wrong magic or checksum, -EPROTONOSUPPORT for another
 * version, -ERANGE for values out of range, -ENODATA if LEN is short. */
int journal_parse_super(const void *buf, size_t len, struct jr_super *ret);

/* A growable frame under construction. */
struct jr_frame {
        uint8_t *buf;
        size_t len, cap;
        unsigned n_records;
};

/* Appends one record to F's payload (frame header space reserved at the front). */
int journal_frame_add(struct jr_frame *f, const struct jr_record *r);
/* Seals F as frame SEQ: fills its header; returns the bytes to write (f->buf, f->len). */
void journal_frame_seal(struct jr_frame *f, uint64_t seq);
void journal_frame_reset(struct jr_frame *f);
void journal_frame_release(struct jr_frame *f);

struct jr_scan {
        size_t end; /* offset just past the last valid frame: where the next one goes */
        uint64_t next_seq; /* sequence the next frame must carry */
        uint64_t frames; /* valid frames read */
        bool torn; /* bytes after END that look like a torn last commit (harmless) */
        bool damaged; /* a damaged frame is followed by a valid one: records were lost */
};

/* Walks the frames of BUF (the whole file, superblock included) starting with sequence FIRST_SEQ,
 * calling RECORD for every record of every valid frame, in order. A RECORD return < 0 stops the
 * scan and is returned. Records with an unknown type or bad length make their frame invalid. */
int journal_scan(const void *buf, size_t len, uint64_t first_seq,
                 int (*record)(void *userdata, const struct jr_record *r), void *userdata,
                 struct jr_scan *ret);
