/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "service/statefile.h"

int statefile_read(const char *path, size_t max, char **ret_buf, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno != ENOENT)
                        return negative_errno();
                *ret_buf = NULL;
                *ret_len = 0;
                return 0;
        }
        struct stat st;
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        _cleanup_free_ char *buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        size_t got = 0;
        while (got < (size_t) st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t) st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                got += (size_t) n;
        }
        buf[got] = 0;
        *ret_buf = TAKE_PTR(buf);
        *ret_len = got;
        return 0;
}

int statefile_foreach_line(const char *buf, size_t len, const char *header,
                           int (*line)(char *l, void *userdata), void *userdata) {
        size_t hl = strlen(header);
        if (len < hl || memcmp(buf, header, hl) != 0)
                return -EBADMSG;
        for (size_t pos = hl; pos < len;) {
                const char *nl = memchr(buf + pos, '\n', len - pos);
                if (!nl)
                        return -EBADMSG;
                size_t n = (size_t) (nl - (buf + pos));
                if (memchr(buf + pos, 0, n))
                        return -EBADMSG;
                _cleanup_free_ char *l = strndup(buf + pos, n);
                if (!l)
                        return -ENOMEM;
                int r = line(l, userdata);
                if (r < 0)
                        return r;
                pos += n + 1;
        }
        return 0;
}

int statefile_write(const char *path, int (*write)(FILE *f, void *userdata), void *userdata) {
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        if (asprintf(&tmp, "%s.new", path) < 0 || !(dir = strdup(path)))
                return -ENOMEM;
        FILE *f = fopen(tmp, "we");
        if (!f)
                return negative_errno();
        int r = write(f, userdata);
        if (r >= 0 && (ferror(f) || fflush(f) != 0 || fsync(fileno(f)) < 0))
                r = errno > 0 ? -errno : -EIO;
        if (fclose(f) != 0 && r >= 0)
                r = negative_errno();
        if (r >= 0 && rename(tmp, path) < 0)
                r = negative_errno();
        if (r < 0) {
                (void) unlink(tmp);
                return r;
        }
        _cleanup_close_ int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0 && fsync(dfd) < 0)
                return negative_errno();
        return 0;
}
