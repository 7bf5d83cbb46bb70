# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Just enough of DIR/meta's byte layout (engine/journal.h) for the tests to
# damage it on purpose: CRC-32C, the superblock's fields, the frame offsets.

import struct

SUPER_SIZE = 8192
SUPER_CRC_OFF = SUPER_SIZE - 4
FRAME_MAGIC = 0x464A564C
FRAME_HEADER = 24

VERSION_OFF = 8
CHUNK_SIZE_OFF = 24


def _table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_TABLE = _table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = (crc >> 8) ^ _TABLE[(crc ^ b) & 0xFF]
    return crc ^ 0xFFFFFFFF


def reseal_super(meta):
    """Recomputes the superblock checksum of META (a bytearray) in place."""
    struct.pack_into("<I", meta, SUPER_CRC_OFF, 0)
    struct.pack_into("<I", meta, SUPER_CRC_OFF, crc32c(bytes(meta[:SUPER_SIZE])))


def set_u32(meta, off, value, reseal=True):
    struct.pack_into("<I", meta, off, value)
    if reseal:
        reseal_super(meta)


def frames(meta):
    """Returns [(offset, total length, sequence)] of the frames, as laid out back to back."""
    out = []
    off = SUPER_SIZE
    while off + FRAME_HEADER <= len(meta):
        magic, plen, seq = struct.unpack_from("<IIQ", meta, off)
        if magic != FRAME_MAGIC or off + FRAME_HEADER + plen > len(meta):
            break
        out.append((off, FRAME_HEADER + plen, seq))
        off += FRAME_HEADER + plen
    return out
