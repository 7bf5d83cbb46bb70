/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * A whole lvss writer (include/lvss/writer.h): it offers one directory as a file-group component
 * "Files/<basename>" and, at Freeze, flushes the directory's filesystem with syncfs(2), so that a
 * shadow copy taken between Freeze and Thaw holds everything written before Freeze. It prints
 * each event it is told about. A real writer would also stop its own writes between Freeze and
 * Thaw (or Abort).
 *
 *   lvss-example-writer [--socket PATH] [--name NAME] DIR
 *
 * Build: cc example-writer.c $(pkg-config --cflags --libs liblvss)
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* syncfs(2) */
#endif

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lvss/writer.h>

#define EXAMPLE_CLASS_ID "0b7c6c53-1f0e-4d52-9a53-2f3b7d9e8a10" /* made once, kept for ever */

static lvss_writer *writer;

static void on_signal(int sig) {
        lvss_writer_quit(writer); /* async-signal-safe */
}

static void print_event(const struct lvss_event_info *info) {
        printf("%s %s", lvss_event_to_string(info->event), info->set_id);
        if (info->context[0])
                printf(" context=%s", info->context);
        for (size_t i = 0; info->components[i]; i++)
                printf(" component=%s", info->components[i]);
        for (size_t i = 0; info->shadow_paths[i]; i++)
                printf(" shadow=%s", info->shadow_paths[i]);
        printf(" deadline=%ums\n", (unsigned) info->deadline_ms);
        fflush(stdout);
}

static lvss_result on_event(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        print_event(info);
        return LVSS_RESULT_OK;
}

static lvss_result on_freeze(lvss_writer *w, const struct lvss_event_info *info, void *userdata) {
        const char *dir = userdata;
        print_event(info);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "example-writer: cannot open %s: %s\n", dir, strerror(errno));
                return LVSS_RESULT_RETRYABLE;
        }
        int r = syncfs(fd);
        int saved = errno;
        close(fd);
        if (r < 0) {
                fprintf(stderr, "example-writer: cannot flush %s: %s\n", dir, strerror(saved));
                return saved == ENOSPC ? LVSS_RESULT_OUT_OF_RESOURCES : LVSS_RESULT_RETRYABLE;
        }
        return LVSS_RESULT_OK;
}

int main(int argc, char *argv[]) {
        const char *socket_path = NULL, *name = "example-writer", *dir = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
                        socket_path = argv[++i];
                else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
                        name = argv[++i];
                else if (argv[i][0] != '-' && !dir)
                        dir = argv[i];
                else {
                        fprintf(stderr, "usage: %s [--socket PATH] [--name NAME] DIR\n", argv[0]);
                        return 2;
                }
        }
        if (!dir) {
                fprintf(stderr, "usage: %s [--socket PATH] [--name NAME] DIR\n", argv[0]);
                return 2;
        }

        int r = lvss_writer_new(name, EXAMPLE_CLASS_ID, NULL, &writer);
        if (r < 0) {
                fprintf(stderr, "example-writer: bad name %s: %s\n", name, strerror(-r));
                return 2;
        }

        /* The component: DIR and everything under it. */
        const char *base = strrchr(dir, '/');
        base = base && base[1] ? base + 1 : "root";
        lvss_wmd_component *c;
        r = lvss_wmd_add_component(lvss_writer_metadata(writer), LVSS_WMD_COMPONENT_FILE_GROUP, "Files",
                                   base, NULL, true, true, &c);
        if (r >= 0)
                r = lvss_wmd_component_add_files(c, LVSS_WMD_FILES, dir, "*", true, LVSS_WMD_BACKUP_FULL);
        if (r < 0) {
                fprintf(stderr, "example-writer: %s is not an absolute directory path: %s\n", dir,
                        strerror(-r));
                lvss_writer_free(writer);
                return 2;
        }

        for (int e = LVSS_EVENT_PREPARE_FOR_BACKUP; e < _LVSS_EVENT_MAX; e++)
                lvss_writer_set_callback(writer, (lvss_event) e, on_event, NULL);
        lvss_writer_set_callback(writer, LVSS_EVENT_FREEZE, on_freeze, (void *) dir);

        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);

        r = lvss_writer_connect(writer, socket_path);
        if (r < 0) {
                fprintf(stderr, "example-writer: cannot register with lvssd: %s\n", strerror(-r));
                lvss_writer_free(writer);
                return 1;
        }
        printf("registered %s, instance %s\n", name, lvss_writer_instance_id(writer));
        fflush(stdout);

        r = lvss_writer_run(writer);

        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGTERM);
        sigaddset(&block, SIGINT);
        sigprocmask(SIG_BLOCK, &block, NULL);
        lvss_writer_free(writer);
        if (r < 0) {
                fprintf(stderr, "example-writer: %s\n", r == -ECONNRESET ? "lvssd went away" : strerror(-r));
                return 1;
        }
        return 0;
}
