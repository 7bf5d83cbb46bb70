/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* CRC-32C (Castagnoli), as used by iSCSI, ext4 and btrfs metadata. */

#include <stddef.h>
#include <stdint.h>

/* Continues CRC over BUF; start with crc32c(0, ...). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
