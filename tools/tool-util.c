/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * Parsing and formatting for the command-line tools (see tool-util.h). No
 * state, no engine calls; every function is safe on any input string.
 */

#include "tools/tool-util.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/macro.h"

int tool_parse_size(const char *s, uint64_t *ret) {
        static const struct {
                const char *suffix;
                unsigned shift;
        } suffixes[] = {
                { "", 0 },     { "B", 0 },  { "K", 10 },   { "k", 10 }, { "KiB", 10 }, { "M", 20 },
                { "MiB", 20 }, { "G", 30 }, { "GiB", 30 }, { "T", 40 }, { "TiB", 40 },
        };
        unsigned long long v;
        char *end;

        if (!s || !ret || !(*s >= '0' && *s <= '9'))
                return -EINVAL; /* no sign, no space, no empty string */
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno == ERANGE)
                return -ERANGE;
        if (errno != 0 || end == s)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                if (strcmp(end, suffixes[i].suffix) != 0)
                        continue;
                if (v > (UINT64_MAX >> suffixes[i].shift))
                        return -ERANGE;
                *ret = (uint64_t) v << suffixes[i].shift;
                return 0;
        }
        return -EINVAL;
}

int tool_parse_id(const char *s, uint32_t *ret) {
        uint64_t v;

        if (!s || !*s || strspn(s, "0123456789") != strlen(s))
                return -EINVAL;
        if (tool_parse_size(s, &v) < 0 || v == 0 || v > UINT32_MAX)
                return -EINVAL;
        *ret = (uint32_t) v;
        return 0;
}

int tool_parse_limit(const char *s, uint64_t *ret) {
        if (s && strcmp(s, "unbounded") == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        return tool_parse_size(s, ret);
}

const char *tool_format_bytes(char *buf, size_t len, uint64_t bytes) {
        static const char units[] = "KMGTPE";
        double v = (double) bytes;
        int u = -1;

        if (bytes < 1024) {
                snprintf(buf, len, "%" PRIu64 "B", bytes);
                return buf;
        }
        while (v >= 1024.0 && u < 5) {
                v /= 1024.0;
                u++;
        }
        if (v == (double) (uint64_t) v)
                snprintf(buf, len, "%" PRIu64 "%c", (uint64_t) v, units[u]);
        else
                snprintf(buf, len, "%.1f%c", v, units[u]);
        return buf;
}

const char *tool_format_rfc3339(char *buf, size_t len, uint64_t ns) {
        time_t t = (time_t) (ns / 1000000000u);
        struct tm tm;
        char off[8];
        size_t n;

        if (!localtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
            strftime(off, sizeof off, "%z", &tm) != 5) {
                snprintf(buf, len, "@%" PRIu64, ns / 1000000000u);
                return buf;
        }
        n = strlen(buf);
        snprintf(buf + n, len - n, "%.3s:%.2s", off, off + 3); /* +0100 -> +01:00 */
        return buf;
}

void tool_json_string(FILE *f, const char *s) {
        fputc('"', f);
        for (const unsigned char *p = (const unsigned char *) (s ? s : ""); *p; p++) {
                switch (*p) {
                case '"':
                        fputs("\\\"", f);
                        break;
                case '\\':
                        fputs("\\\\", f);
                        break;
                case '\n':
                        fputs("\\n", f);
                        break;
                case '\t':
                        fputs("\\t", f);
                        break;
                case '\r':
                        fputs("\\r", f);
                        break;
                default:
                        if (*p < 0x20 || *p == 0x7f)
                                fprintf(f, "\\u%04x", *p);
                        else
                                fputc(*p, f);
                }
        }
        fputc('"', f);
}

ssize_t tool_read_full(int fd, void *buf, size_t len) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = read(fd, (char *) buf + done, len - done);
                if (n < 0 && errno == EINTR) {
                        if (done > 0)
                                break; /* the caller sees the signal before the next block */
                        return -EINTR;
                }
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        return (ssize_t) done;
}

int tool_write_full(int fd, const void *buf, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, buf, len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                buf = (const char *) buf + n;
                len -= (size_t) n;
        }
        return 0;
}

int tool_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
        while (len > 0) {
                ssize_t n = pwrite(fd, buf, len, (off_t) off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                buf = (const char *) buf + n;
                len -= (size_t) n;
                off += (uint64_t) n;
        }
        return 0;
}

int tool_input_size(int fd, uint64_t *ret) {
        struct stat st;
        uint64_t size;

        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (S_ISREG(st.st_mode)) {
                *ret = (uint64_t) st.st_size;
                return 0;
        }
        if (S_ISBLK(st.st_mode)) {
                if (ioctl(fd, BLKGETSIZE64, &size) < 0)
                        return negative_errno();
                *ret = size;
                return 0;
        }
        return -ENOTSUP;
}

bool tool_is_zero(const void *buf, size_t len) {
        const uint8_t *p = buf;

        return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}
