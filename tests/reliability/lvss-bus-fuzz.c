/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * lvss-bus-fuzz: drives lvssd's D-Bus API (docs/dbus-api.md) with random, hostile messages for a
 * bounded time and fails if lvssd stops answering.
 *
 *   lvss-bus-fuzz --address unix:path=RUNTIME/lvssd.sock [--seconds N] [--iterations N]
 *                 [--seed S] [--timeout SEC] [--protect NAME]... [--scratch DIR] [--no-writer]
 *                 [--dump-dir DIR] [--verbose]
 *
 * Each iteration sends one of:
 *   - a method of the real API (Manager1, Volume1, Shadow1, ShadowSet1, the writer methods) with
 *     its signature but hostile values: huge strings (up to 64 MiB, rarely), format strings,
 *     control characters, ids and prefixes of real and unknown shadows, odd object paths
 *     (/org/lvss/volume/_2e_2e_2f, _00, deep or long paths), arrays of 10^5 strings;
 *   - the same methods with a wrong signature (one argument too many or too few, random types,
 *     deeply nested variants), and without an interface;
 *   - Properties Get/GetAll/Set, Introspect, ObjectManager GetManagedObjects, Peer on every kind
 *     of object, and unknown interfaces and members;
 *   - CreateShadowSet with options of unknown keys and wrong variant types;
 *   - RegisterWriter with hostile identities (on a connection closed at once);
 *   - floods: many calls without waiting for their answers, some never read;
 *   - raw bytes on a plain AF_UNIX connection: an invalid authentication, or a valid one then
 *     invalid D-Bus frames (invalid UTF-8, bad lengths, bad header fields, invalid object paths,
 *     unknown fds, a body that never comes), and idle half-open connections kept for a while.
 * Meanwhile a thread serves a registered writer (org.lvss.Writer1) that answers every event
 * at once, with a valid answer, an error, a wrong signature or garbage metadata.
 *
 * Calls that would legitimately destroy the data of a volume named by --protect are never made
 * against it (DeleteVolume, Volume1.Delete, RevertToShadow / Shadow1.Revert of its shadows,
 * AttachVolume/DetachVolume, ResizeStorage): they are checked against lvssd's current lists
 * first, and still fuzzed against every other name and id. Paths given as mount points or
 * images are only ever under --scratch, inside lvssd's own directories, relative or
 * nonexistent: never a directory or device of the host.
 *
 * Every call waits at most --timeout seconds (5): a call left unanswered is a HANG, printed with
 * the last messages sent, exit 2. Exit 0 if lvssd answered everything and a new connection still
 * answers at the end; 1 if lvssd went away (connection refused) or on a usage error.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#define USEC_PER_SEC 1000000ULL
#define MiB (1024u * 1024u)
#define ELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_KNOWN 512
#define MAX_PROTECT 8
#define MAX_ERRNAMES 128
#define HISTORY 16

static const char MANAGER_PATH[] = "/org/lvss";
static const char MANAGER_IF[] = "org.lvss.Manager1";
static const char VOLUME_IF[] = "org.lvss.Volume1";
static const char SHADOW_IF[] = "org.lvss.Shadow1";
static const char SET_IF[] = "org.lvss.ShadowSet1";
static const char PROPS_IF[] = "org.freedesktop.DBus.Properties";

/* ---- random numbers (xorshift64*, one state per thread) ---- */

typedef struct {
        uint64_t s;
} rng_t;

static uint64_t rnd(rng_t *r) {
        uint64_t x = r->s;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r->s = x;
        return x * UINT64_C(2685821657736338717);
}

static uint64_t below(rng_t *r, uint64_t n) {
        return n ? rnd(r) % n : 0;
}

static bool chance(rng_t *r, unsigned percent) {
        return below(r, 100) < percent;
}

/* ---- the run's state ---- */

struct errname {
        char *name;
        unsigned long count;
};

struct shadow_info {
        char *id, *volume;
};

static struct {
        const char *address;
        char socket_path[108];
        uint64_t seed;
        double seconds;
        unsigned long iterations;
        uint64_t timeout_usec;
        const char *protect[MAX_PROTECT];
        size_t n_protect;
        const char *scratch;
        const char *dump_dir;
        bool writer;
        bool verbose;

        rng_t rng;
        sd_bus *bus;
        char *runtime_dir, *state_dir;

        /* what lvssd last listed */
        char *volumes[MAX_KNOWN];
        size_t n_volumes;
        struct shadow_info shadows[MAX_KNOWN];
        size_t n_shadows;
        char *sets[MAX_KNOWN];
        size_t n_sets;
        char *exposed[MAX_KNOWN];
        size_t n_exposed;
        char *writers[MAX_KNOWN];
        size_t n_writers;

        /* counts */
        unsigned long iteration, calls, replies, errors, local_errors, garbage, reconnects, skipped,
                floods, side_calls;
        struct errname errnames[MAX_ERRNAMES];
        size_t n_errnames;
        char history[HISTORY][512];
        unsigned long n_history;

} F;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
        (void) sig;
        stop_requested = 1;
}

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

static void *xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        if (!p) {
                fprintf(stderr, "lvss-bus-fuzz: out of memory\n");
                exit(1);
        }
        return p;
}

static char *xstrdup(const char *s) {
        char *p = strdup(s);
        if (!p) {
                fprintf(stderr, "lvss-bus-fuzz: out of memory\n");
                exit(1);
        }
        return p;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
        va_list ap;
        char *s = NULL;
        va_start(ap, fmt);
        int n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0) {
                fprintf(stderr, "lvss-bus-fuzz: out of memory\n");
                exit(1);
        }
        return s;
}

/* Records a line about what is being sent, for the report of a failure. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
        char *line = F.history[F.n_history++ % HISTORY];
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(line, 512, "#%lu ", F.iteration);
        vsnprintf(line + n, (size_t) (512 - n), fmt, ap);
        va_end(ap);
        if (F.verbose)
                fprintf(stderr, "%s\n", line);
}

static void print_history(void) {
        unsigned long first = F.n_history > HISTORY ? F.n_history - HISTORY : 0;
        fprintf(stderr, "lvss-bus-fuzz: the last messages sent (oldest first):\n");
        for (unsigned long i = first; i < F.n_history; i++)
                fprintf(stderr, "  %s\n", F.history[i % HISTORY]);
}

static void count_error(const char *name) {
        if (!name)
                name = "(none)";
        for (size_t i = 0; i < F.n_errnames; i++)
                if (strcmp(F.errnames[i].name, name) == 0) {
                        F.errnames[i].count++;
                        return;
                }
        if (F.n_errnames < MAX_ERRNAMES) {
                F.errnames[F.n_errnames].name = xstrdup(name);
                F.errnames[F.n_errnames++].count = 1;
        }
}

static bool is_protected(const char *name) {
        for (size_t i = 0; i < F.n_protect; i++)
                if (strcmp(F.protect[i], name) == 0)
                        return true;
        return false;
}

/* ---- connections ---- */

static int connect_bus(sd_bus **ret) {
        sd_bus *b = NULL;
        int r = sd_bus_new(&b);
        if (r >= 0)
                r = sd_bus_set_address(b, F.address);
        if (r >= 0)
                (void) sd_bus_set_method_call_timeout(b, F.timeout_usec);
        if (r >= 0)
                r = sd_bus_negotiate_fds(b, true);
        if (r >= 0)
                r = sd_bus_start(b);
        if (r < 0) {
                sd_bus_unref(b);
                return r;
        }
        *ret = b;
        return 0;
}

static _Noreturn void fail_hang(const char *what) {
        fprintf(stderr,
                "lvss-bus-fuzz: HANG: lvssd did not answer %s within %.1f s (seed %" PRIu64
                ", iteration %lu)\n",
                what, (double) F.timeout_usec / USEC_PER_SEC, F.seed, F.iteration);
        print_history();
        exit(2);
}

static _Noreturn void fail_gone(const char *what, int r) {
        fprintf(stderr,
                "lvss-bus-fuzz: lvssd is unreachable (%s: %s) (seed %" PRIu64 ", iteration %lu)\n", what,
                strerror(-r), F.seed, F.iteration);
        print_history();
        exit(1);
}

/* The main connection was closed (by lvssd, or by sd-bus after a message it refused): a new
 * one must be accepted at once. */
static void reconnect(void) {
        if (F.bus)
                F.bus = sd_bus_flush_close_unref(F.bus);
        int r = -EIO;
        for (int attempt = 0; attempt < 50; attempt++) {
                r = connect_bus(&F.bus);
                if (r >= 0)
                        break;
                usleep(100 * 1000);
        }
        if (r < 0)
                fail_gone("reconnecting", r);
        F.reconnects++;
}

static bool disconnected_errno(int r) {
        return r == -ECONNRESET || r == -ENOTCONN || r == -EPIPE || r == -ESHUTDOWN ||
               r == -ECONNREFUSED || r == -ECONNABORTED;
}

/* Writes MSG (header and body, as sd-bus prints them) to DUMP_DIR/KIND-ITERATION.txt. */
static void dump_message(sd_bus_message *msg, const char *kind) {
        if (!F.dump_dir || !msg)
                return;
        char *p = xasprintf("%s/%s-%lu.txt", F.dump_dir, kind, F.iteration);
        FILE *f = fopen(p, "we");
        if (f) {
                fprintf(f, "seed %" PRIu64 " iteration %lu\n", F.seed, F.iteration);
                (void) sd_bus_message_rewind(msg, true);
                (void) sd_bus_message_dump(msg, f, SD_BUS_MESSAGE_DUMP_WITH_HEADER);
                fclose(f);
                fprintf(stderr, "lvss-bus-fuzz: the message is in %s\n", p);
        }
        free(p);
}

/*
 * Sends MSG on BUS and waits for its answer. Returns 1 on a method return (*ret_reply set if
 * RET_REPLY), 0 on an error reply (counted by name), a negative errno on a local failure (the
 * message could not be sent, e.g. sd-bus refused it). A call not answered in time is a HANG.
 */
static int call(sd_bus *bus, sd_bus_message *msg, sd_bus_message **ret_reply, const char *what) {
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        F.calls++;
        int r = sd_bus_call(bus, msg, F.timeout_usec, &err, &reply);
        if (r >= 0) {
                F.replies++;
                if (ret_reply)
                        *ret_reply = reply;
                else
                        sd_bus_message_unref(reply);
                return 1;
        }
        if (sd_bus_error_is_set(&err) && sd_bus_is_open(bus) <= 0) {
                /* sd-bus answers the calls it could not send with a made-up error once the
                 * connection is closed: not lvssd's answer. */
                F.local_errors++;
                if (F.verbose)
                        fprintf(stderr, "   -> connection closed (%s)\n", err.name);
                sd_bus_error_free(&err);
                return r < 0 ? r : -ENOTCONN;
        }
        if (r == -ETIMEDOUT && (!sd_bus_error_is_set(&err) || sd_bus_error_has_name(&err, SD_BUS_ERROR_TIMEOUT) ||
                                sd_bus_error_has_name(&err, SD_BUS_ERROR_NO_REPLY))) {
                /* sd-bus's own "Method call timed out" (lvssd's timeouts are org.lvss.Error.Timeout) */
                sd_bus_error_free(&err);
                dump_message(msg, "hang");
                fail_hang(what);
        }
        if (sd_bus_error_is_set(&err)) {
                /* A remote error, whatever errno sd-bus maps it to. */
                F.errors++;
                count_error(err.name);
                if (F.verbose)
                        fprintf(stderr, "   -> %s: %.200s\n", err.name, err.message ? err.message : "");
                sd_bus_error_free(&err);
                return 0;
        }
        sd_bus_error_free(&err);
        if (r == -ETIMEDOUT) {
                dump_message(msg, "hang");
                fail_hang(what);
        }
        F.local_errors++;
        if (F.verbose)
                fprintf(stderr, "   -> local error %s\n", strerror(-r));
        return r;
}

/* call() on the main connection, reconnecting if it went away. */
static int main_call(sd_bus_message *msg, sd_bus_message **ret_reply, const char *what) {
        int r = call(F.bus, msg, ret_reply, what);
        if (r < 0 && (disconnected_errno(r) || sd_bus_is_open(F.bus) <= 0)) {
                fprintf(stderr, "lvss-bus-fuzz: the connection closed (%s) on: %s\n", strerror(-r),
                        F.n_history ? F.history[(F.n_history - 1) % HISTORY] : "(nothing)");
                dump_message(msg, "disconnect");
                reconnect();
        }
        return r;
}

static int new_call(sd_bus *bus, sd_bus_message **ret, const char *path, const char *iface,
                    const char *member) {
        return sd_bus_message_new_method_call(bus, ret, NULL, path, iface, member);
}

/* ---- what lvssd holds ---- */

static void free_strs(char **l, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                free(l[i]);
        *n = 0;
}

static void refresh(void) {
        sd_bus_message *m = NULL, *reply = NULL;
        int r;

        note("refresh: ListVolumes, ListShadows, ListSets, ListWriters");
        if (new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "ListVolumes") >= 0 &&
            main_call(m, &reply, "ListVolumes") > 0) {
                free_strs(F.volumes, &F.n_volumes);
                const char *name;
                r = sd_bus_message_enter_container(reply, 'a', "(sstusuttt)");
                while (r > 0 && (r = sd_bus_message_read(reply, "(sstusuttt)", &name, NULL, NULL, NULL, NULL,
                                                         NULL, NULL, NULL, NULL)) > 0)
                        if (F.n_volumes < MAX_KNOWN)
                                F.volumes[F.n_volumes++] = xstrdup(name);
        }
        m = sd_bus_message_unref(m);
        reply = sd_bus_message_unref(reply);

        if (new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "ListShadows") >= 0 &&
            sd_bus_message_append(m, "ss", "", "") >= 0 && main_call(m, &reply, "ListShadows") > 0) {
                for (size_t i = 0; i < F.n_shadows; i++) {
                        free(F.shadows[i].id);
                        free(F.shadows[i].volume);
                }
                F.n_shadows = 0;
                free_strs(F.exposed, &F.n_exposed);
                r = sd_bus_message_enter_container(reply, 'a', "(sssssstbsas)");
                while (r > 0 && (r = sd_bus_message_enter_container(reply, 'r', "sssssstbsas")) > 0) {
                        const char *id, *vol, *mp;
                        r = sd_bus_message_read(reply, "sssssstbs", &id, NULL, &vol, NULL, NULL, NULL, NULL,
                                                NULL, NULL);
                        if (r < 0)
                                break;
                        if (F.n_shadows < MAX_KNOWN) {
                                F.shadows[F.n_shadows].id = xstrdup(id);
                                F.shadows[F.n_shadows++].volume = xstrdup(vol);
                        }
                        r = sd_bus_message_enter_container(reply, 'a', "s");
                        while (r > 0 && (r = sd_bus_message_read(reply, "s", &mp)) > 0)
                                if (F.n_exposed < MAX_KNOWN)
                                        F.exposed[F.n_exposed++] = xstrdup(mp);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                break;
                        r = 1;
                }
        }
        m = sd_bus_message_unref(m);
        reply = sd_bus_message_unref(reply);

        if (new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "ListSets") >= 0 &&
            main_call(m, &reply, "ListSets") > 0) {
                free_strs(F.sets, &F.n_sets);
                const char *id;
                r = sd_bus_message_enter_container(reply, 'a', "(ssttas)");
                while (r > 0 && (r = sd_bus_message_enter_container(reply, 'r', "ssttas")) > 0) {
                        r = sd_bus_message_read(reply, "sstt", &id, NULL, NULL, NULL);
                        if (r >= 0 && F.n_sets < MAX_KNOWN)
                                F.sets[F.n_sets++] = xstrdup(id);
                        if (r >= 0)
                                r = sd_bus_message_skip(reply, "as");
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        if (r < 0)
                                break;
                        r = 1;
                }
        }
        m = sd_bus_message_unref(m);
        reply = sd_bus_message_unref(reply);

        if (new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "ListWriters") >= 0 &&
            main_call(m, &reply, "ListWriters") > 0) {
                free_strs(F.writers, &F.n_writers);
                const char *name;
                r = sd_bus_message_enter_container(reply, 'a', "(ssssssss)");
                while (r > 0 && (r = sd_bus_message_read(reply, "(ssssssss)", &name, NULL, NULL, NULL, NULL,
                                                         NULL, NULL, NULL)) > 0)
                        if (F.n_writers < MAX_KNOWN)
                                F.writers[F.n_writers++] = xstrdup(name);
        }
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
}

/* True if ID may name (exactly, or as a unique prefix of 8 or more characters) a shadow of a
 * protected volume, as lvssd's manager_find_shadow() reads it. */
static bool shadow_ref_protected(const char *id) {
        size_t n = strlen(id);
        for (size_t i = 0; i < F.n_shadows; i++) {
                if (!is_protected(F.shadows[i].volume))
                        continue;
                if (strcmp(F.shadows[i].id, id) == 0 || (n >= 8 && strncmp(F.shadows[i].id, id, n) == 0))
                        return true;
        }
        return false;
}

/* Asks lvssd which volume TARGET names (a name or a mount point): the volume name, or NULL. */
static char *resolve_target(const char *target) {
        sd_bus_message *m = NULL, *reply = NULL;
        char *out = NULL;
        const char *v;
        if (new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "ResolveTarget") >= 0 &&
            sd_bus_message_append(m, "s", target) >= 0 && main_call(m, &reply, "ResolveTarget") > 0 &&
            sd_bus_message_read(reply, "s", &v) > 0)
                out = xstrdup(v);
        sd_bus_message_unref(m);
        sd_bus_message_unref(reply);
        return out;
}

static bool target_protected(const char *target) {
        if (is_protected(target))
                return true;
        char *v = resolve_target(target);
        bool p = v && is_protected(v);
        free(v);
        return p;
}

/* ---- hostile values ---- */

static const char *pick(const char *const *l, size_t n) {
        return l[below(&F.rng, n)];
}

#define PICK(l) pick(l, ELEMS(l))

static const char *const UTF8_SAMPLES[] = {
        "é", "ß", "Ω", "日本語", "💥", "\xe2\x80\x8b" /* zero width space */, "\xef\xbb\xbf" /* BOM */,
        "\xe2\x80\xae" /* right-to-left override */, "\xf4\x8f\xbf\xbd" /* U+10FFFD */,
};

static const char *const FORMATS[] = {
        "%s%s%s%s%s%s", "%n%n%n%n", "%x%x%x%x", "%999999999d", "%.2147483647s", "%*s", "%ls", "%%",
        "%s", "%p%p%p",
};

static const char *const WORDS[] = {
        "backup", "file-share-backup", "app-rollback", "nas-rollback", "client-accessible", "full",
        "incremental", "differential", "log", "copy", "cow", "front-end", "back-end", "system",
        "NoWriters", "Writers", "ExcludeWriters", "BackupType", "Persistent", "-1", "0",
        "18446744073709551616", "null", "true", "..", ".", "-", "a.", "a..b", "..a",
};

/* A string of N bytes (valid UTF-8, no NUL) of one of a few shapes, malloc'ed. */
static char *gen_fill(size_t n) {
        char *s = xmalloc(n + 1);
        switch (below(&F.rng, 4)) {
        case 0:
                memset(s, 'A', n);
                break;
        case 1:
                for (size_t i = 0; i < n; i++)
                        s[i] = (char) (0x20 + below(&F.rng, 0x5f));
                break;
        case 2:
                for (size_t i = 0; i < n; i++)
                        s[i] = "/._-a"[below(&F.rng, 5)];
                break;
        default:
                for (size_t i = 0; i < n; i++)
                        s[i] = (char) (1 + below(&F.rng, 0x7f)); /* control characters too */
                break;
        }
        s[n] = 0;
        return s;
}

static size_t gen_big_len(void) {
        unsigned c = (unsigned) below(&F.rng, 1000);
        if (c < 700)
                return 256 + below(&F.rng, 4096);
        if (c < 950)
                return 4096 + below(&F.rng, 256 * 1024);
        if (c < 998)
                return below(&F.rng, 4 * MiB);
        return 16 * MiB + below(&F.rng, 48 * MiB); /* rare: tens of MiB */
}

static char *gen_uuidish(void) {
        return xasprintf("%08" PRIx64 "-%04x-%04x-%04x-%012" PRIx64, rnd(&F.rng) & 0xffffffff,
                         (unsigned) below(&F.rng, 0x10000), (unsigned) below(&F.rng, 0x10000),
                         (unsigned) below(&F.rng, 0x10000), rnd(&F.rng) & UINT64_C(0xffffffffffff));
}

/* A known shadow id, a prefix of one, or something close. */
static char *gen_shadow_ref(void) {
        if (F.n_shadows == 0 || chance(&F.rng, 15))
                return gen_uuidish();
        const char *id = F.shadows[below(&F.rng, F.n_shadows)].id;
        switch (below(&F.rng, 8)) {
        case 0:
                return xasprintf("%.8s", id);
        case 1:
                return xasprintf("%.7s", id);
        case 2:
                return xasprintf("%.12s", id);
        case 3:
                return xasprintf("%sx", id);
        case 4: {
                char *s = xstrdup(id);
                for (char *p = s; *p; p++)
                        if (*p >= 'a' && *p <= 'f')
                                *p = (char) (*p - 'a' + 'A');
                return s;
        }
        default:
                return xstrdup(id);
        }
}

static char *gen_set_ref(void) {
        if (F.n_sets == 0 || chance(&F.rng, 20))
                return gen_uuidish();
        const char *id = F.sets[below(&F.rng, F.n_sets)];
        return chance(&F.rng, 30) ? xasprintf("%.8s", id) : xstrdup(id);
}

static char *gen_volume_name(void) {
        if (F.n_volumes > 0 && chance(&F.rng, 60))
                return xstrdup(F.volumes[below(&F.rng, F.n_volumes)]);
        switch (below(&F.rng, 8)) {
        case 0:
                return xasprintf("fz%" PRIu64, below(&F.rng, 16));
        case 1:
                return gen_fill(65);
        case 2:
                return xstrdup(PICK(WORDS));
        case 3:
                return xasprintf("fz%" PRIu64 "/../x", below(&F.rng, 4));
        case 4:
                return xasprintf("-fz%" PRIu64, below(&F.rng, 4));
        case 5:
                return xasprintf("fz%s", PICK(UTF8_SAMPLES));
        default:
                return xasprintf("fz%" PRIu64, below(&F.rng, 6));
        }
}

/*
 * A path that is safe to hand lvssd as a mount point or an image: under --scratch, inside
 * lvssd's own state or runtime directories (which it must refuse), relative, or nonexistent.
 */
static char *gen_safe_path(void) {
        const char *scratch = F.scratch;
        unsigned c = (unsigned) below(&F.rng, 20);
        if (!scratch && c < 12)
                c = 12 + (unsigned) below(&F.rng, 8);
        switch (c) {
        case 0:
        case 1:
        case 2:
                return xasprintf("%s/mp%" PRIu64, scratch, below(&F.rng, 6));
        case 3:
                return xasprintf("%s/mp%" PRIu64 "/", scratch, below(&F.rng, 6));
        case 4:
                return xasprintf("%s/mp0/../mp%" PRIu64, scratch, below(&F.rng, 6));
        case 5:
                return xasprintf("%s/img%" PRIu64, scratch, below(&F.rng, 4));
        case 6:
                return xasprintf("%s/link-%s", scratch,
                                 (const char *[]){ "volume", "state", "runtime", "img" }[below(&F.rng, 4)]);
        case 7:
                return xasprintf("%s/nonexistent/%" PRIu64, scratch, below(&F.rng, 100));
        case 8: {
                char *long_name = gen_fill(300);
                for (char *p = long_name; *p; p++)
                        if (*p == '/')
                                *p = 'x';
                char *s = xasprintf("%s/%s", scratch, long_name);
                free(long_name);
                return s;
        }
        case 9: {
                char *s = xasprintf("%s/mp1%s", scratch, "");
                for (unsigned i = 0, n = (unsigned) below(&F.rng, 1200); i < n; i++) {
                        char *t = xasprintf("%s/.", s);
                        free(s);
                        s = t;
                }
                return s;
        }
        case 10:
                return xasprintf("%s/file", scratch);
        case 11:
                return xasprintf("%s", scratch);
        case 12:
                return F.runtime_dir ? xasprintf("%s/dev/%s", F.runtime_dir,
                                                 chance(&F.rng, 50) ? "volumes" : "shadows")
                                     : xstrdup("/nonexistent-lvss-fuzz/x");
        case 13:
                if (F.state_dir && F.n_volumes)
                        return xasprintf("%s/volumes/%s/%s", F.state_dir,
                                         F.volumes[below(&F.rng, F.n_volumes)],
                                         (const char *[]){ "image", "meta", "diff", "" }[below(&F.rng, 4)]);
                return xstrdup("/nonexistent-lvss-fuzz/y");
        case 14:
                if (F.runtime_dir && F.n_volumes)
                        return xasprintf("%s/dev/volumes/%s", F.runtime_dir, F.volumes[below(&F.rng, F.n_volumes)]);
                return xstrdup("/nonexistent-lvss-fuzz/z");
        case 15:
                return xasprintf("/nonexistent-lvss-fuzz/%" PRIu64, rnd(&F.rng));
        case 16:
                return xstrdup((const char *[]){ "", ".", "..", "mp0", "relative/path", "~" }[below(&F.rng, 6)]);
        case 17:
                if (F.n_exposed)
                        return xstrdup(F.exposed[below(&F.rng, F.n_exposed)]);
                return xasprintf("/nonexistent-lvss-fuzz/%s", "exposed");
        case 18: {
                /* long junk, never absolute: a path of '/' and '.' alone could name "/" */
                char *s = gen_fill(gen_big_len());
                if (s[0] == '/')
                        s[0] = 'x';
                return s;
        }
        default:
                return xasprintf("/nonexistent-lvss-fuzz/%" PRIu64 "/..", below(&F.rng, 9));
        }
}

/* A hostile string for an argument that lvssd only looks up. */
static char *gen_string(void) {
        switch (below(&F.rng, 20)) {
        case 0:
                return xstrdup("");
        case 1:
        case 2:
                return gen_volume_name();
        case 3:
        case 4:
                return gen_shadow_ref();
        case 5:
                return gen_set_ref();
        case 6:
                return xasprintf("%s", PICK(UTF8_SAMPLES));
        case 7:
                return gen_fill(1 + below(&F.rng, 32));
        case 8:
        case 9:
                return gen_fill(gen_big_len());
        case 10:
                return xstrdup(PICK(FORMATS));
        case 11:
                return xstrdup(PICK(WORDS));
        case 12:
                return gen_safe_path();
        case 13:
                return gen_uuidish();
        case 14:
                return xasprintf("/proc/self/%s", chance(&F.rng, 50) ? "mem" : "fd/0");
        case 15:
                return F.n_writers ? xstrdup(F.writers[below(&F.rng, F.n_writers)]) : xstrdup("fuzz-writer");
        case 16:
                return xasprintf("a\nb\tc\rd\x01\x7f%s", PICK(UTF8_SAMPLES));
        default:
                return gen_fill(below(&F.rng, 100));
        }
}

static uint64_t gen_u64(void) {
        static const uint64_t v[] = { 0,           1,          511,        512,
                                      4096,        16384,      1 << 20,    4 << 20,
                                      64 << 20,    UINT64_MAX, UINT64_MAX - 511, INT64_MAX,
                                      UINT64_C(1) << 50, (UINT64_C(1) << 50) + 512, (UINT64_C(1) << 44), 4095 };
        return chance(&F.rng, 80) ? v[below(&F.rng, ELEMS(v))] : rnd(&F.rng);
}

static uint32_t gen_u32(void) {
        static const uint32_t v[] = { 0, 1, 4096, 8192, 16384, 1 << 20, 2 << 20, 4097, 3 << 12, UINT32_MAX, 512 };
        return chance(&F.rng, 80) ? v[below(&F.rng, ELEMS(v))] : (uint32_t) rnd(&F.rng);
}

/* A valid object path (sd-bus checks them) that lvssd should not find. */
static char *gen_object_path(void) {
        static const char *const prefixes[] = { "/org/lvss/volume", "/org/lvss/shadow", "/org/lvss/set" };
        const char *prefix = PICK(prefixes);
        char *enc = NULL, *s = NULL;
        switch (below(&F.rng, 16)) {
        case 0:
                return xstrdup("/");
        case 1:
                return xstrdup(MANAGER_PATH);
        case 2:
                return xstrdup(prefix);
        case 3:
                return xasprintf("%s/_2e_2e_2f", prefix);
        case 4:
                return xasprintf("%s/_00", prefix);
        case 5:
                return xasprintf("%s/_", prefix);
        case 6:
                return xasprintf("%s/_zz_2", prefix);
        case 7:
                return xasprintf("%s/a/b/c", prefix);
        case 8:
                return xstrdup("/org/lvss/writer");
        case 9: {
                s = gen_fill(1 + below(&F.rng, 64 * 1024));
                for (char *p = s; *p; p++)
                        *p = 'a';
                char *t = xasprintf("%s/%s", prefix, s);
                free(s);
                return t;
        }
        case 10: {
                size_t depth = 1 + below(&F.rng, 2000);
                s = xmalloc(depth * 2 + 1);
                for (size_t i = 0; i < depth; i++)
                        memcpy(s + 2 * i, "/a", 2);
                s[depth * 2] = 0;
                char *t = xasprintf("%s%s", prefix, s);
                free(s);
                return t;
        }
        case 11:
                return xstrdup("/org/freedesktop/DBus");
        default: {
                char *what = chance(&F.rng, 50) ? gen_string() : gen_shadow_ref();
                if (strlen(what) > 4096)
                        what[4096] = 0;
                if (sd_bus_path_encode(prefix, what, &enc) < 0)
                        enc = xstrdup(prefix);
                free(what);
                return enc;
        }
        }
}

/* The object path of a known object of the kind of interface IFACE (or of any kind). */
static char *gen_known_path(const char *iface) {
        char *p = NULL, *id = NULL;
        int r = -1;
        if (iface == VOLUME_IF && F.n_volumes && chance(&F.rng, 85))
                r = sd_bus_path_encode("/org/lvss/volume", F.volumes[below(&F.rng, F.n_volumes)], &p);
        else if (iface == SHADOW_IF && F.n_shadows && chance(&F.rng, 85))
                r = sd_bus_path_encode("/org/lvss/shadow", F.shadows[below(&F.rng, F.n_shadows)].id, &p);
        else if (iface == SET_IF && F.n_sets && chance(&F.rng, 85))
                r = sd_bus_path_encode("/org/lvss/set", F.sets[below(&F.rng, F.n_sets)], &p);
        else if (iface == MANAGER_IF && chance(&F.rng, 90))
                return xstrdup(MANAGER_PATH);
        else if (iface == SHADOW_IF && F.n_shadows && chance(&F.rng, 50)) {
                /* a prefix: only exact ids are objects */
                id = xasprintf("%.8s", F.shadows[below(&F.rng, F.n_shadows)].id);
                r = sd_bus_path_encode("/org/lvss/shadow", id, &p);
                free(id);
        }
        if (r >= 0 && p)
                return p;
        return gen_object_path();
}

/* ---- generic random values for a signature ---- */

/* The length of the single complete type at the start of S (0 if none). */
static size_t type_len(const char *s) {
        if (!*s)
                return 0;
        if (*s == 'a')
                return 1 + type_len(s + 1);
        if (*s == '(' || *s == '{') {
                char close = *s == '(' ? ')' : '}';
                size_t i = 1;
                while (s[i] && s[i] != close) {
                        size_t n = type_len(s + i);
                        if (n == 0)
                                return 0;
                        i += n;
                }
                return s[i] ? i + 1 : 0;
        }
        return 1;
}

static const char BASIC[] = "ybnqiuxtdsog";

/* Appends to BUF a random complete type, DEPTH levels of containers at most. */
static void gen_type(char *buf, size_t size, unsigned depth) {
        size_t len = strlen(buf);
        if (len + 8 >= size || depth == 0 || chance(&F.rng, 55)) {
                if (len + 1 < size) {
                        buf[len] = BASIC[below(&F.rng, sizeof BASIC - 1)];
                        buf[len + 1] = 0;
                }
                return;
        }
        switch (below(&F.rng, 4)) {
        case 0:
                strcat(buf, "a");
                gen_type(buf, size, depth - 1);
                return;
        case 1: {
                strcat(buf, "(");
                for (unsigned i = 0, n = 1 + (unsigned) below(&F.rng, 3); i < n && strlen(buf) + 8 < size; i++)
                        gen_type(buf, size, depth - 1);
                strcat(buf, ")");
                return;
        }
        case 2: {
                char k[2] = { BASIC[below(&F.rng, sizeof BASIC - 1)], 0 };
                strcat(buf, "a{");
                strcat(buf, k);
                gen_type(buf, size, depth - 1);
                strcat(buf, "}");
                return;
        }
        default:
                strcat(buf, "v");
                return;
        }
}

static int append_value(sd_bus_message *m, const char *type, size_t tlen, unsigned depth);

/* Appends random values for every complete type of SIG. */
static int append_values(sd_bus_message *m, const char *sig, unsigned depth) {
        for (const char *p = sig; *p;) {
                size_t n = type_len(p);
                if (n == 0)
                        return -EINVAL;
                int r = append_value(m, p, n, depth);
                if (r < 0)
                        return r;
                p += n;
        }
        return 0;
}

static int append_string_arg(sd_bus_message *m, char type) {
        int r;
        if (type == 'o') {
                char *p = gen_object_path();
                r = sd_bus_message_append_basic(m, 'o', p);
                free(p);
                return r;
        }
        if (type == 'g') {
                char sig[64] = "";
                gen_type(sig, sizeof sig, 3);
                return sd_bus_message_append_basic(m, 'g', sig);
        }
        char *s = gen_string();
        r = sd_bus_message_append_basic(m, 's', s);
        free(s);
        return r;
}

static int append_value(sd_bus_message *m, const char *type, size_t tlen, unsigned depth) {
        char sub[256];
        int r;
        if (tlen >= sizeof sub)
                return -EINVAL;
        switch (type[0]) {
        case 'y': {
                uint8_t v = (uint8_t) rnd(&F.rng);
                return sd_bus_message_append_basic(m, 'y', &v);
        }
        case 'b': {
                int v = (int) below(&F.rng, 2);
                return sd_bus_message_append_basic(m, 'b', &v);
        }
        case 'n':
        case 'q': {
                uint16_t v = (uint16_t) gen_u32();
                return sd_bus_message_append_basic(m, type[0], &v);
        }
        case 'i':
        case 'u': {
                uint32_t v = gen_u32();
                return sd_bus_message_append_basic(m, type[0], &v);
        }
        case 'x':
        case 't': {
                uint64_t v = gen_u64();
                return sd_bus_message_append_basic(m, type[0], &v);
        }
        case 'd': {
                static const double v[] = { 0.0, -0.0, 1e308, -1e308, 5e-324 };
                double d = chance(&F.rng, 20) ? NAN : chance(&F.rng, 20) ? INFINITY : v[below(&F.rng, ELEMS(v))];
                return sd_bus_message_append_basic(m, 'd', &d);
        }
        case 's':
        case 'o':
        case 'g':
                return append_string_arg(m, type[0]);
        case 'h': {
                int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                r = sd_bus_message_append_basic(m, 'h', &fd);
                if (fd >= 0)
                        close(fd);
                return r;
        }
        case 'v': {
                char inner[128] = "";
                if (depth > 0 && chance(&F.rng, 25))
                        strcpy(inner, "v");
                else
                        gen_type(inner, sizeof inner, depth > 3 ? 3 : depth);
                r = sd_bus_message_open_container(m, 'v', inner);
                if (r >= 0)
                        r = append_value(m, inner, strlen(inner), depth > 0 ? depth - 1 : 0);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        case 'a': {
                memcpy(sub, type + 1, tlen - 1);
                sub[tlen - 1] = 0;
                if (sub[0] == 'y' && chance(&F.rng, 30)) {
                        size_t n = gen_big_len();
                        void *buf = NULL;
                        r = sd_bus_message_append_array_space(m, 'y', n, &buf);
                        if (r >= 0)
                                memset(buf, 0xa5, n);
                        return r;
                }
                size_t n = below(&F.rng, 6);
                bool basic = sub[1] == 0 && strchr(BASIC, sub[0]);
                if (basic && chance(&F.rng, 3))
                        n = 1000 + below(&F.rng, 100000); /* huge arrays of small values, sometimes */
                r = sd_bus_message_open_container(m, 'a', sub);
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        if (sub[0] == '{') {
                                char kv[256];
                                memcpy(kv, sub + 1, strlen(sub) - 2);
                                kv[strlen(sub) - 2] = 0;
                                r = sd_bus_message_open_container(m, 'e', kv);
                                if (r >= 0)
                                        r = append_values(m, kv, depth > 0 ? depth - 1 : 0);
                                if (r >= 0)
                                        r = sd_bus_message_close_container(m);
                        } else if (n > 1000 && (sub[0] == 's' || sub[0] == 'o' || sub[0] == 'g')) {
                                char s[24];
                                snprintf(s, sizeof s, "%s%zu", sub[0] == 'o' ? "/a" : "s", i);
                                r = sd_bus_message_append_basic(m, sub[0], sub[0] == 'g' ? "s" : s);
                        } else
                                r = append_value(m, sub, strlen(sub), depth > 0 ? depth - 1 : 0);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        case '(': {
                memcpy(sub, type + 1, tlen - 2);
                sub[tlen - 2] = 0;
                r = sd_bus_message_open_container(m, 'r', sub);
                if (r >= 0)
                        r = append_values(m, sub, depth > 0 ? depth - 1 : 0);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                return r;
        }
        default:
                return -EINVAL;
        }
}

/* Appends a variant nested DEPTH times around a random value. */
static int append_nested_variant(sd_bus_message *m, unsigned depth) {
        int r = 0;
        unsigned opened = 0;
        for (; r >= 0 && opened < depth; opened++)
                r = sd_bus_message_open_container(m, 'v', opened + 1 < depth ? "v" : "s");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', "deep");
        for (unsigned i = 0; r >= 0 && i < opened; i++)
                r = sd_bus_message_close_container(m);
        return r;
}

/* ---- the API ---- */

enum guard {
        G_NONE,
        G_VOLUME_NAME,    /* arg 0: a volume name, never a protected one */
        G_TARGET,         /* arg 0: a target, never resolving to a protected volume */
        G_SHADOW_REF,     /* arg 0: a shadow id/prefix, never one of a protected volume */
        G_VOLUME_OBJECT,  /* the object: never a protected volume */
        G_SHADOW_OBJECT,  /* the object: never a shadow of a protected volume */
};

struct method {
        const char *iface, *member, *sig;
        enum guard guard;
};

static const struct method METHODS[] = {
        { MANAGER_IF, "CreateVolume", "stus", G_NONE },
        { MANAGER_IF, "DeleteVolume", "sb", G_VOLUME_NAME },
        { MANAGER_IF, "ListVolumes", "", G_NONE },
        { MANAGER_IF, "GetVolume", "s", G_NONE },
        { MANAGER_IF, "AttachVolume", "s", G_VOLUME_NAME },
        { MANAGER_IF, "DetachVolume", "s", G_VOLUME_NAME },
        { MANAGER_IF, "ResolveTarget", "s", G_NONE },
        { MANAGER_IF, "CreateShadowSet", "assa{sv}", G_NONE }, /* built by append_args() */
        { MANAGER_IF, "ListShadows", "ss", G_NONE },
        { MANAGER_IF, "ListSets", "", G_NONE },
        { MANAGER_IF, "DeleteShadows", "as", G_NONE },
        { MANAGER_IF, "DeleteShadowSet", "s", G_NONE },
        { MANAGER_IF, "DeleteVolumeShadows", "sb", G_NONE },
        { MANAGER_IF, "DeleteAllShadows", "", G_NONE },
        { MANAGER_IF, "ExposeShadow", "ss", G_NONE },
        { MANAGER_IF, "UnexposeShadow", "s", G_NONE },
        { MANAGER_IF, "RevertToShadow", "sb", G_SHADOW_REF },
        { MANAGER_IF, "ResizeStorage", "st", G_TARGET },
        { MANAGER_IF, "ListStorage", "", G_NONE },
        { MANAGER_IF, "ListProviders", "", G_NONE },
        { MANAGER_IF, "GetChangedChunks", "ss", G_NONE },
        { MANAGER_IF, "RecordBackup", "assst", G_NONE },
        { MANAGER_IF, "FindBackupBase", "ass", G_NONE },
        { MANAGER_IF, "RegisterWriter", "a{sv}", G_NONE },
        { MANAGER_IF, "UnregisterWriter", "", G_NONE },
        { MANAGER_IF, "ListWriters", "", G_NONE },
        { MANAGER_IF, "GetWriterMetadata", "s", G_NONE },
        { MANAGER_IF, "CompleteBackup", "sb", G_NONE },
        { MANAGER_IF, "PreRestore", "sasa{ss}", G_NONE },
        { MANAGER_IF, "PostRestore", "sasa{ss}", G_NONE },
        { VOLUME_IF, "Delete", "b", G_VOLUME_OBJECT },
        { SHADOW_IF, "Delete", "", G_NONE },
        { SHADOW_IF, "Expose", "s", G_NONE },
        { SHADOW_IF, "Revert", "b", G_SHADOW_OBJECT },
        { SET_IF, "Delete", "", G_NONE },
};

static const char *const PROPERTIES[] = {
        "Version", "StateDirectory", "RuntimeDirectory", "SetInProgress", "Name", "Provider", "Size",
        "ChunkSize", "Path", "Image", "Shadows", "DiffUsed", "DiffMax", "Id", "Set", "Volume", "Context",
        "Created", "Persistent", "State", "Exposed", "HoldUsec", "Nope", "",
};

static const char *const INTERFACES[] = {
        "org.lvss.Manager1", "org.lvss.Volume1", "org.lvss.Shadow1", "org.lvss.ShadowSet1",
        "org.lvss.Writer1", "org.lvss.Manager2", "org.freedesktop.DBus.Properties",
        "org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer",
        "org.freedesktop.DBus.ObjectManager", "org.freedesktop.DBus", "a.b", "org.lvss",
};

static const char *const MEMBERS[] = {
        "Hello", "AddMatch", "RequestName", "Get", "GetAll", "Set", "Introspect", "Ping", "GetMachineId",
        "GetManagedObjects", "Delete", "Expose", "Revert", "Identify", "Freeze", "Thaw", "Foo", "list",
        "Listx", "GetX", "List", "Get", "ListShadows", "ListVolumes", "CreateVolume", "DeleteAllShadows",
};

/* The string argument of a method, by the method's name and the argument's place. */
static char *gen_arg_string(const struct method *md, unsigned idx) {
        const char *n = md->member;
        if ((strcmp(n, "ExposeShadow") == 0 && idx == 1) || strcmp(n, "UnexposeShadow") == 0 ||
            (md->iface == SHADOW_IF && strcmp(n, "Expose") == 0))
                return gen_safe_path();
        if (strcmp(n, "CreateVolume") == 0 && idx == 3)
                return chance(&F.rng, 60) ? xstrdup("") : gen_safe_path();
        if (strcmp(n, "CreateVolume") == 0 && idx == 0)
                return chance(&F.rng, 70) ? xasprintf("fz%" PRIu64, below(&F.rng, 8)) : gen_string();
        if ((strcmp(n, "ExposeShadow") == 0 || strcmp(n, "RevertToShadow") == 0 ||
             strcmp(n, "GetChangedChunks") == 0) &&
            chance(&F.rng, 70))
                return gen_shadow_ref();
        if (strcmp(n, "DeleteShadowSet") == 0 || strcmp(n, "CompleteBackup") == 0)
                return chance(&F.rng, 70) ? gen_set_ref() : gen_string();
        if ((strcmp(n, "RecordBackup") == 0 && idx == 2) || (strcmp(n, "FindBackupBase") == 0 && idx == 1))
                return chance(&F.rng, 70) ? xstrdup(PICK(WORDS)) : gen_string();
        if (strcmp(n, "RecordBackup") == 0 && idx == 3)
                return chance(&F.rng, 50) ? gen_safe_path() : xasprintf("/tmp/x%s", chance(&F.rng, 50) ? "" : "/..");
        if (strcmp(n, "RecordBackup") == 0 && idx == 1)
                return chance(&F.rng, 50) ? gen_uuidish() : gen_string();
        if (strcmp(n, "GetWriterMetadata") == 0 || strcmp(n, "PreRestore") == 0 ||
            strcmp(n, "PostRestore") == 0)
                return chance(&F.rng, 60) && F.n_writers ? xstrdup(F.writers[below(&F.rng, F.n_writers)])
                                                         : gen_string();
        if (strcmp(n, "DeleteVolume") == 0 || strcmp(n, "GetVolume") == 0 || strcmp(n, "AttachVolume") == 0 ||
            strcmp(n, "DetachVolume") == 0 || strcmp(n, "ResolveTarget") == 0 ||
            strcmp(n, "DeleteVolumeShadows") == 0 || strcmp(n, "ResizeStorage") == 0 ||
            strcmp(n, "ListShadows") == 0)
                return chance(&F.rng, 65) ? gen_volume_name() : gen_string();
        return gen_string();
}

/* A string list: known names and ids, hostile strings, or a huge list. */
static int append_strv_arg(sd_bus_message *m, const struct method *md) {
        int r = sd_bus_message_open_container(m, 'a', "s");
        size_t n = below(&F.rng, 5);
        if (chance(&F.rng, 4))
                n = 4000 + below(&F.rng, 100000);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                char *s;
                if (n > 100)
                        s = xasprintf("%s%zu", chance(&F.rng, 50) ? "fz" : "", i);
                else if (strcmp(md->member, "DeleteShadows") == 0)
                        s = gen_shadow_ref();
                else if (strcmp(md->member, "PreRestore") == 0 || strcmp(md->member, "PostRestore") == 0)
                        s = chance(&F.rng, 50) ? xasprintf("logical/%s", PICK(WORDS)) : gen_string();
                else
                        s = chance(&F.rng, 70) ? gen_volume_name() : gen_string();
                r = sd_bus_message_append_basic(m, 's', s);
                free(s);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* The options of CreateShadowSet, or the identity of RegisterWriter: known keys with right or
 * wrong types, unknown keys, nested variants. */
/* What append_options() put in its last dictionary, for the report of a failure. */
static char options_trace[256];

static void trace_option(const char *key, const char *type) {
        size_t n = strlen(options_trace);
        if (n + 40 < sizeof options_trace)
                snprintf(options_trace + n, sizeof options_trace - n, "%s%.16s:%.16s", n ? "," : "", key, type);
}

static int append_options(sd_bus_message *m, bool identity) {
        static const char *const set_keys[] = { "NoWriters", "Writers", "ExcludeWriters", "BackupType", "Persistent" };
        static const char *const id_keys[] = { "Name",  "ClassId", "InstanceId", "InstanceName", "Level",
                                               "Usage", "Source",  "FreezeTimeoutMs" };
        int r = sd_bus_message_open_container(m, 'a', "{sv}");
        size_t n = below(&F.rng, 5);
        if (chance(&F.rng, 2))
                n = 1000 + below(&F.rng, 20000);
        options_trace[0] = 0;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const char *key = identity ? PICK(id_keys) : PICK(set_keys);
                char *owned = NULL;
                if (chance(&F.rng, 10))
                        key = owned = gen_string();
                r = sd_bus_message_open_container(m, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append_basic(m, 's', key);
                unsigned c = (unsigned) below(&F.rng, 10);
                if (r < 0) {
                } else if (c < 5) {
                        /* the right type, a hostile value */
                        trace_option(key, "right");
                        bool b = strcmp(key, "NoWriters") == 0 || strcmp(key, "Persistent") == 0;
                        bool as = strcmp(key, "Writers") == 0 || strcmp(key, "ExcludeWriters") == 0;
                        bool u = strcmp(key, "FreezeTimeoutMs") == 0;
                        if (b)
                                r = sd_bus_message_append(m, "v", "b", (int) below(&F.rng, 2));
                        else if (u)
                                r = sd_bus_message_append(m, "v", "u", gen_u32());
                        else if (as) {
                                r = sd_bus_message_open_container(m, 'v', "as");
                                if (r >= 0)
                                        r = append_strv_arg(m, &METHODS[0]);
                                if (r >= 0)
                                        r = sd_bus_message_close_container(m);
                        } else {
                                char *s;
                                if (strcmp(key, "Name") == 0 && chance(&F.rng, 50))
                                        s = xasprintf("fzw%" PRIu64, below(&F.rng, 4));
                                else if ((strcmp(key, "ClassId") == 0 || strcmp(key, "InstanceId") == 0) &&
                                         chance(&F.rng, 60))
                                        s = gen_uuidish();
                                else
                                        s = chance(&F.rng, 50) ? xstrdup(PICK(WORDS)) : gen_string();
                                r = sd_bus_message_append(m, "v", "s", s);
                                free(s);
                        }
                } else if (c < 8) {
                        /* a wrong type */
                        char t[64] = "";
                        gen_type(t, sizeof t, 3);
                        trace_option(key, t);
                        r = sd_bus_message_open_container(m, 'v', t);
                        if (r >= 0)
                                r = append_value(m, t, strlen(t), 3);
                        if (r >= 0)
                                r = sd_bus_message_close_container(m);
                } else
                {
                        unsigned depth = 1 + (unsigned) below(&F.rng, 70);
                        char t[16];
                        snprintf(t, sizeof t, "v^%u", depth);
                        trace_option(key, t);
                        r = append_nested_variant(m, depth);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                free(owned);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

/* Appends the arguments of MD, in its signature, with hostile values. */
static int append_args(sd_bus_message *m, const struct method *md, char **ret_arg0) {
        const char *n = md->member;
        unsigned idx = 0;
        int r = 0;
        if (strcmp(n, "CreateShadowSet") == 0) {
                r = append_strv_arg(m, md);
                if (r >= 0) {
                        char *ctx = chance(&F.rng, 70) ? xstrdup((const char *[]){ "", "backup", "file-share-backup",
                                                                                 "app-rollback", "nas-rollback",
                                                                                 "client-accessible" }[below(&F.rng, 6)])
                                                       : gen_string();
                        r = sd_bus_message_append_basic(m, 's', ctx);
                        free(ctx);
                }
                if (r >= 0)
                        r = append_options(m, false);
                return r;
        }
        if (strcmp(n, "RegisterWriter") == 0)
                return append_options(m, true);
        for (const char *p = md->sig; r >= 0 && *p;) {
                size_t tl = type_len(p);
                if (p[0] == 's') {
                        char *s = gen_arg_string(md, idx);
                        r = sd_bus_message_append_basic(m, 's', s);
                        /* keep the string the guard must see */
                        if (ret_arg0 && idx == 0)
                                *ret_arg0 = s;
                        else
                                free(s);
                } else if (p[0] == 'a' && p[1] == 's')
                        r = append_strv_arg(m, md);
                else if (p[0] == 't') {
                        uint64_t v = gen_u64();
                        if (strcmp(n, "CreateVolume") == 0 && chance(&F.rng, 70))
                                v = (1 + below(&F.rng, 64)) * MiB;
                        r = sd_bus_message_append_basic(m, 't', &v);
                } else
                        r = append_value(m, p, tl, 4);
                idx++;
                p += tl;
        }
        return r;
}

/* Decodes the object path P under PREFIX: the last element, or NULL. */
static char *decode_path(const char *p, const char *prefix) {
        char *out = NULL;
        if (sd_bus_path_decode(p, prefix, &out) <= 0)
                return NULL;
        return out;
}

/* Whether calling MD at PATH with first string argument ARG0 may hurt a protected volume. */
static bool guarded(const struct method *md, const char *path, const char *arg0) {
        switch (md->guard) {
        case G_NONE:
                return false;
        case G_VOLUME_NAME:
                return arg0 && is_protected(arg0);
        case G_TARGET:
                return arg0 && target_protected(arg0);
        case G_SHADOW_REF:
                refresh();
                return arg0 && shadow_ref_protected(arg0);
        case G_VOLUME_OBJECT: {
                char *name = decode_path(path, "/org/lvss/volume");
                bool p = name && is_protected(name);
                free(name);
                return p;
        }
        case G_SHADOW_OBJECT: {
                refresh();
                char *id = decode_path(path, "/org/lvss/shadow");
                bool p = id && shadow_ref_protected(id);
                free(id);
                return p;
        }
        }
        return true;
}

static const char *short_str(const char *s, char *buf, size_t size) {
        if (!s)
                return "(null)";
        size_t n = strlen(s);
        if (n < size - 16)
                return s;
        snprintf(buf, size, "%.*s...(%zu bytes)", (int) (size - 32), s, n);
        return buf;
}

/* A method of the API on an object of its interface, its signature, hostile values. */
static void fuzz_api_method(bool no_interface) {
        const struct method *md = &METHODS[below(&F.rng, ELEMS(METHODS))];
        char *path = gen_known_path(md->iface);
        char *arg0 = NULL;
        sd_bus_message *m = NULL;
        char b1[96], b2[96];
        int r = new_call(F.bus, &m, path, no_interface ? NULL : md->iface, md->member);
        if (r >= 0)
                r = append_args(m, md, &arg0);
        if (r < 0) {
                F.local_errors++;
                goto out;
        }
        /* Without an interface, sd-bus looks the member up in every interface of the path: a
         * Delete may reach Volume1.Delete, a Revert Shadow1.Revert, whatever the table said. */
        static const struct method volume_delete = { VOLUME_IF, "Delete", "b", G_VOLUME_OBJECT };
        static const struct method shadow_revert = { SHADOW_IF, "Revert", "b", G_SHADOW_OBJECT };
        bool skip = guarded(md, path, arg0);
        if (!skip && no_interface && strcmp(md->member, "Delete") == 0)
                skip = guarded(&volume_delete, path, arg0);
        if (!skip && no_interface && strcmp(md->member, "Revert") == 0)
                skip = guarded(&shadow_revert, path, arg0);
        if (!skip && sd_bus_message_get_bus(m) != F.bus)
                skip = true; /* the guard's own calls reconnected: this message is of the old bus */
        if (skip) {
                F.skipped++;
                note("skipped (protected): %s.%s at %s arg0 %s", md->iface, md->member, short_str(path, b1, sizeof b1),
                     short_str(arg0, b2, sizeof b2));
                goto out;
        }
        bool opts = strcmp(md->member, "CreateShadowSet") == 0 || strcmp(md->member, "RegisterWriter") == 0;
        note("%s%s.%s(%s) at %s arg0 %s%s%s", no_interface ? "(no interface) " : "", md->iface, md->member, md->sig,
             short_str(path, b1, sizeof b1), short_str(arg0, b2, sizeof b2), opts ? " options " : "",
             opts ? options_trace : "");
        r = main_call(m, NULL, md->member);
        if (r > 0 && (strstr(md->member, "Create") || strstr(md->member, "Delete") || strstr(md->member, "Expose") ||
                      strstr(md->member, "Revert") || strstr(md->member, "Register")))
                refresh();
out:
        sd_bus_message_unref(m);
        free(path);
        free(arg0);
}

/* A method of the API with a wrong signature: an argument missing or added, or random types. */
static void fuzz_wrong_signature(void) {
        const struct method *md = &METHODS[below(&F.rng, ELEMS(METHODS))];
        char sig[256] = "";
        const char *real = md->sig;
        switch (below(&F.rng, 4)) {
        case 0: /* one complete type too few */
                snprintf(sig, sizeof sig, "%s", real);
                if (*sig) {
                        size_t last = 0;
                        for (const char *p = sig; *p;) {
                                size_t n = type_len(p);
                                if (!n)
                                        break;
                                last = (size_t) (p - sig);
                                p += n;
                        }
                        sig[last] = 0;
                }
                break;
        case 1: /* one too many */
                snprintf(sig, sizeof sig, "%s", real);
                gen_type(sig, sizeof sig, 3);
                break;
        default:
                for (unsigned i = 0, n = (unsigned) below(&F.rng, 5); i < n; i++)
                        gen_type(sig, sizeof sig, 4);
                break;
        }
        if (strcmp(sig, real) == 0)
                strcat(sig, "y");
        char *path = gen_known_path(md->iface);
        sd_bus_message *m = NULL;
        char b1[96];
        int r = new_call(F.bus, &m, path, md->iface, md->member);
        if (r >= 0)
                r = append_values(m, sig, 4);
        if (r >= 0) {
                note("wrong signature %s.%s(%s) at %s", md->iface, md->member, sig, short_str(path, b1, sizeof b1));
                (void) main_call(m, NULL, md->member);
        } else
                F.local_errors++;
        sd_bus_message_unref(m);
        free(path);
}

/* Properties, Introspect, ObjectManager, Peer on objects of every kind. */
static void fuzz_standard(void) {
        static const char *const ifaces[] = { "org.lvss.Manager1", "org.lvss.Volume1", "org.lvss.Shadow1",
                                              "org.lvss.ShadowSet1" };
        const char *kind = PICK(ifaces);
        const char *kind_ptr = strcmp(kind, MANAGER_IF) == 0  ? MANAGER_IF
                               : strcmp(kind, VOLUME_IF) == 0 ? VOLUME_IF
                               : strcmp(kind, SHADOW_IF) == 0 ? SHADOW_IF
                                                              : SET_IF;
        char *path = gen_known_path(kind_ptr);
        const char *iface = chance(&F.rng, 80) ? kind : PICK(INTERFACES);
        sd_bus_message *m = NULL;
        char b1[96];
        int r;
        unsigned c = (unsigned) below(&F.rng, 8);
        const char *what;
        switch (c) {
        case 0:
        case 1: {
                what = "Properties.Get";
                r = new_call(F.bus, &m, path, PROPS_IF, "Get");
                if (r >= 0)
                        r = sd_bus_message_append(m, "ss", iface, chance(&F.rng, 90) ? PICK(PROPERTIES) : "Size\n");
                break;
        }
        case 2:
                what = "Properties.GetAll";
                r = new_call(F.bus, &m, path, PROPS_IF, "GetAll");
                if (r >= 0)
                        r = sd_bus_message_append(m, "s", chance(&F.rng, 85) ? iface : "");
                break;
        case 3: {
                what = "Properties.Set";
                r = new_call(F.bus, &m, path, PROPS_IF, "Set");
                if (r >= 0)
                        r = sd_bus_message_append(m, "ss", iface, PICK(PROPERTIES));
                if (r >= 0)
                        r = append_value(m, "v", 1, 4);
                break;
        }
        case 4:
                what = "Introspect";
                r = new_call(F.bus, &m, chance(&F.rng, 70) ? path : "/", "org.freedesktop.DBus.Introspectable",
                             "Introspect");
                break;
        case 5:
                what = "GetManagedObjects";
                r = new_call(F.bus, &m, chance(&F.rng, 70) ? MANAGER_PATH : path,
                             "org.freedesktop.DBus.ObjectManager", "GetManagedObjects");
                break;
        case 6:
                what = "Peer";
                r = new_call(F.bus, &m, path, "org.freedesktop.DBus.Peer",
                             chance(&F.rng, 50) ? "Ping" : "GetMachineId");
                break;
        default: {
                /* unknown interfaces and members, or known members at the wrong place */
                what = "unknown member";
                char *member = NULL;
                if (chance(&F.rng, 20)) {
                        member = gen_fill(1 + below(&F.rng, 255));
                        for (char *p = member; *p; p++)
                                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
                                        *p = 'M';
                }
                r = new_call(F.bus, &m, chance(&F.rng, 50) ? path : MANAGER_PATH,
                             chance(&F.rng, 30) ? NULL : PICK(INTERFACES), member ? member : PICK(MEMBERS));
                free(member);
                if (r >= 0 && chance(&F.rng, 50)) {
                        char sig[64] = "";
                        gen_type(sig, sizeof sig, 3);
                        r = append_values(m, sig, 3);
                }
                break;
        }
        }
        if (r >= 0) {
                note("%s %s on %s at %s", what, sd_bus_message_get_member(m), iface, short_str(path, b1, sizeof b1));
                /* Unknown members of Manager1 without an interface: sd-bus may find a real
                 * method by name; the destructive ones are not in MEMBERS but Delete/Revert are. */
                const char *mem = sd_bus_message_get_member(m);
                if (c == 7 && mem &&
                    (strcmp(mem, "Delete") == 0 || strcmp(mem, "Revert") == 0 || strcmp(mem, "Expose") == 0)) {
                        F.skipped++; /* handled by fuzz_api_method with its guards */
                } else
                        (void) main_call(m, NULL, what);
        } else
                F.local_errors++;
        sd_bus_message_unref(m);
        free(path);
}

/* RegisterWriter with a hostile identity, on a connection of its own closed at once (a writer
 * left registered on a connection that does not answer would make sets wait for it). */
static void fuzz_register_writer(void) {
        sd_bus *side = NULL;
        sd_bus_message *m = NULL;
        int r = connect_bus(&side);
        if (r < 0) {
                if (r == -ECONNREFUSED || r == -ENOENT)
                        fail_gone("connecting", r);
                F.local_errors++;
                return;
        }
        const struct method *md = NULL;
        for (size_t i = 0; i < ELEMS(METHODS); i++)
                if (strcmp(METHODS[i].member, "RegisterWriter") == 0)
                        md = &METHODS[i];
        r = new_call(side, &m, MANAGER_PATH, MANAGER_IF, "RegisterWriter");
        if (r >= 0)
                r = append_args(m, md, NULL);
        if (r >= 0) {
                note("RegisterWriter (side connection, closed after)");
                F.side_calls++;
                r = call(side, m, NULL, "RegisterWriter");
                if (r > 0 && chance(&F.rng, 30)) {
                        /* and a second one on the same connection */
                        sd_bus_message *m2 = NULL;
                        if (new_call(side, &m2, MANAGER_PATH, MANAGER_IF, "RegisterWriter") >= 0 &&
                            append_args(m2, md, NULL) >= 0)
                                (void) call(side, m2, NULL, "RegisterWriter (second)");
                        sd_bus_message_unref(m2);
                }
        }
        sd_bus_message_unref(m);
        if (chance(&F.rng, 50))
                sd_bus_close(side); /* or just drop it */
        sd_bus_unref(side);
}

/* Many calls at once without waiting; then (mostly) every answer, or the connection dropped
 * with the answers unread. */
static void fuzz_flood(void) {
        sd_bus *side = NULL;
        int r = connect_bus(&side);
        if (r < 0) {
                if (r == -ECONNREFUSED || r == -ENOENT)
                        fail_gone("connecting", r);
                F.local_errors++;
                return;
        }
        unsigned n = 50 + (unsigned) below(&F.rng, 2000);
        bool read_answers = chance(&F.rng, 60), no_reply = chance(&F.rng, 20);
        note("flood of %u calls on a side connection (%s%s)", n, read_answers ? "answers read" : "answers dropped",
             no_reply ? ", no reply expected" : "");
        F.floods++;
        uint64_t *cookies = xmalloc(n * sizeof *cookies);
        unsigned sent = 0;
        for (unsigned i = 0; i < n; i++) {
                sd_bus_message *m = NULL;
                static const char *const cheap[] = { "ListVolumes", "ListShadows", "ListSets", "ListStorage",
                                                     "ListProviders", "ListWriters", "GetVolume", "Nope" };
                const char *member = PICK(cheap);
                if (new_call(side, &m, MANAGER_PATH, MANAGER_IF, member) < 0)
                        break;
                if (strcmp(member, "ListShadows") == 0)
                        (void) sd_bus_message_append(m, "ss", "", "");
                else if (strcmp(member, "GetVolume") == 0)
                        (void) sd_bus_message_append(m, "s", "fz0");
                if (no_reply)
                        (void) sd_bus_message_set_expect_reply(m, false);
                r = sd_bus_send(side, m, &cookies[sent]);
                sd_bus_message_unref(m);
                if (r < 0)
                        break;
                sent++;
                F.side_calls++;
        }
        (void) sd_bus_flush(side);
        if (read_answers && !no_reply) {
                unsigned got = 0;
                uint64_t deadline = now_usec() + F.timeout_usec + (uint64_t) sent * 2000;
                while (got < sent) {
                        sd_bus_message *msg = NULL;
                        r = sd_bus_process(side, &msg);
                        if (r < 0)
                                break;
                        if (msg) {
                                uint8_t t = 0;
                                (void) sd_bus_message_get_type(msg, &t);
                                if (t == SD_BUS_MESSAGE_METHOD_RETURN || t == SD_BUS_MESSAGE_METHOD_ERROR)
                                        got++;
                                sd_bus_message_unref(msg);
                                continue;
                        }
                        if (r > 0)
                                continue;
                        uint64_t now = now_usec();
                        if (now >= deadline) {
                                free(cookies);
                                fprintf(stderr, "lvss-bus-fuzz: %u of %u flooded calls answered\n", got, sent);
                                fail_hang("a flood of calls");
                        }
                        (void) sd_bus_wait(side, deadline - now);
                }
        }
        free(cookies);
        sd_bus_flush_close_unref(side);
        /* lvssd must still answer the main connection */
        sd_bus_message *ping = NULL;
        if (new_call(F.bus, &ping, MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping") >= 0)
                (void) main_call(ping, NULL, "Ping after a flood");
        sd_bus_message_unref(ping);
}

/* ---- raw bytes on the socket ---- */

struct buf {
        uint8_t *p;
        size_t len, cap;
};

static void buf_put(struct buf *b, const void *data, size_t n) {
        if (b->len + n > b->cap) {
                size_t cap = b->cap ? b->cap : 256;
                while (cap < b->len + n)
                        cap *= 2;
                uint8_t *p = realloc(b->p, cap);
                if (!p) {
                        fprintf(stderr, "lvss-bus-fuzz: out of memory\n");
                        exit(1);
                }
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, data, n);
        b->len += n;
}

static void buf_pad(struct buf *b, size_t align) {
        static const uint8_t zero[8];
        while (b->len % align)
                buf_put(b, zero, 1);
}

static void buf_u32(struct buf *b, uint32_t v) {
        buf_pad(b, 4);
        buf_put(b, &v, 4); /* little-endian host: the message says 'l' */
}

static void buf_str(struct buf *b, const char *s, size_t n) {
        buf_u32(b, (uint32_t) n);
        buf_put(b, s, n);
        buf_put(b, "", 1);
}

static void buf_sig(struct buf *b, const char *s) {
        uint8_t n = (uint8_t) strlen(s);
        buf_put(b, &n, 1);
        buf_put(b, s, n);
        buf_put(b, "", 1);
}

/* A header field: (code, variant of signature SIG holding a string VAL of N bytes). */
static void buf_field_str(struct buf *b, uint8_t code, const char *sig, const char *val, size_t n) {
        buf_pad(b, 8);
        buf_put(b, &code, 1);
        buf_sig(b, sig);
        if (sig[0] == 'g')
                buf_sig(b, val);
        else
                buf_str(b, val, n);
}

/*
 * A method call frame built by hand: PATH, IFACE, MEMBER, a body of signature SIG (BODY, BODY_LEN
 * bytes), with FLAGS mutations applied. Anything may be wrong in it.
 */
static void raw_message(struct buf *out, const char *path, const char *iface, const char *member,
                        const char *sig, const void *body, size_t body_len, uint32_t serial, unsigned mutation) {
        struct buf h = { 0 };
        uint8_t fixed[4] = { 'l', 1, 0, 1 };
        if (mutation == 1)
                fixed[0] = 'X'; /* unknown endianness */
        if (mutation == 2)
                fixed[3] = 2; /* protocol version */
        if (mutation == 3)
                fixed[1] = (uint8_t) below(&F.rng, 256); /* message type */
        buf_put(&h, fixed, 4);
        buf_u32(&h, mutation == 4 ? (uint32_t) body_len + 1000 : mutation == 5 ? 0xfffffff0u : (uint32_t) body_len);
        buf_u32(&h, mutation == 6 ? 0 : serial);
        struct buf f = { 0 };
        /* the fields array: its length comes first, filled in below */
        if (path)
                buf_field_str(&f, 1, mutation == 7 ? "s" : "o", path, strlen(path));
        if (iface)
                buf_field_str(&f, 2, "s", iface, strlen(iface));
        if (member)
                buf_field_str(&f, 3, "s", member, strlen(member));
        if (sig && *sig)
                buf_field_str(&f, 8, "g", sig, strlen(sig));
        if (mutation == 8) { /* unix fds announced, none sent */
                uint8_t code = 9;
                buf_pad(&f, 8);
                buf_put(&f, &code, 1);
                buf_sig(&f, "u");
                buf_u32(&f, 3);
        }
        if (mutation == 9) /* a duplicate member field */
                buf_field_str(&f, 3, "s", "ListVolumes", 11);
        if (mutation == 10) { /* an unknown field code */
                buf_field_str(&f, 200, "s", "x", 1);
        }
        uint32_t flen = (uint32_t) f.len;
        if (mutation == 11)
                flen = (uint32_t) rnd(&F.rng);
        buf_u32(&h, flen);
        buf_pad(&h, 8); /* the array of structs is aligned to 8 */
        buf_put(&h, f.p, f.len);
        buf_pad(&h, 8);
        buf_put(out, h.p, h.len);
        if (body && body_len)
                buf_put(out, body, body_len);
        free(h.p);
        free(f.p);
}

static int raw_connect(void) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", F.socket_path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        struct timeval tv = { .tv_sec = 0, .tv_usec = 500 * 1000 };
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        return fd;
}

static void raw_send(int fd, const void *p, size_t n) {
        const uint8_t *q = p;
        while (n > 0) {
                ssize_t k = send(fd, q, n, MSG_NOSIGNAL);
                if (k <= 0)
                        return; /* lvssd closed it, or does not read: fine */
                q += k;
                n -= (size_t) k;
        }
}

/* Reads what lvssd answers for up to MS milliseconds, until it closes. */
static size_t raw_drain(int fd, int ms) {
        uint8_t tmp[4096];
        size_t total = 0;
        uint64_t end = now_usec() + (uint64_t) ms * 1000;
        for (;;) {
                uint64_t now = now_usec();
                if (now >= end)
                        break;
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, (int) ((end - now) / 1000) + 1) <= 0)
                        break;
                ssize_t k = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
                if (k <= 0)
                        break;
                total += (size_t) k;
        }
        return total;
}

/* A valid authentication (EXTERNAL as ourselves), then BEGIN. */
static bool raw_auth(int fd) {
        char line[64];
        int n = snprintf(line, sizeof line, "AUTH EXTERNAL ");
        char uid[16];
        snprintf(uid, sizeof uid, "%u", (unsigned) getuid());
        for (const char *p = uid; *p; p++)
                n += snprintf(line + n, sizeof line - (size_t) n, "%02x", (unsigned) *p);
        snprintf(line + n, sizeof line - (size_t) n, "\r\n");
        raw_send(fd, "", 1);
        raw_send(fd, line, strlen(line));
        char ok[256];
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 2000) <= 0)
                return false;
        ssize_t k = recv(fd, ok, sizeof ok - 1, 0);
        if (k <= 0)
                return false;
        ok[k] = 0;
        if (strncmp(ok, "OK ", 3) != 0)
                return false;
        if (chance(&F.rng, 20))
                raw_send(fd, "NEGOTIATE_UNIX_FD\r\n", 19);
        raw_send(fd, "BEGIN\r\n", 7);
        return true;
}

/* Half-open connections kept for a while (they must not hold lvssd up). */
static int idle_fds[8];
static uint64_t idle_until[8];

static void idle_reap(bool all) {
        uint64_t now = now_usec();
        for (size_t i = 0; i < ELEMS(idle_fds); i++)
                if (idle_fds[i] > 0 && (all || now >= idle_until[i])) {
                        close(idle_fds[i]);
                        idle_fds[i] = 0;
                }
}

static void keep_idle(int fd) {
        for (size_t i = 0; i < ELEMS(idle_fds); i++)
                if (idle_fds[i] <= 0) {
                        idle_fds[i] = fd;
                        idle_until[i] = now_usec() + (1 + below(&F.rng, 20)) * USEC_PER_SEC;
                        return;
                }
        close(fd);
}

static void fuzz_raw(void) {
        int fd = raw_connect();
        if (fd < 0) {
                if (fd == -ECONNREFUSED || fd == -ENOENT)
                        fail_gone("connecting (raw)", fd);
                F.local_errors++;
                return;
        }
        F.garbage++;
        unsigned kind = (unsigned) below(&F.rng, 12);
        uint8_t junk[512];
        for (size_t i = 0; i < sizeof junk; i++)
                junk[i] = (uint8_t) rnd(&F.rng);
        bool idle = false;
        switch (kind) {
        case 0:
                note("raw: random bytes before authentication");
                raw_send(fd, junk, 1 + below(&F.rng, sizeof junk));
                break;
        case 1: {
                note("raw: an authentication line that never ends");
                size_t n = 16 * 1024 + below(&F.rng, 256 * 1024);
                char *s = xmalloc(n);
                memset(s, 'A', n);
                raw_send(fd, "\0AUTH ", 6);
                raw_send(fd, s, n);
                free(s);
                break;
        }
        case 2: {
                static const char *const lines[] = {
                        "\0AUTH EXTERNAL 31\r\nBEGIN\r\n",       /* uid 1: not who we are */
                        "\0AUTH ANONYMOUS\r\nBEGIN\r\n",          "\0AUTH DBUS_COOKIE_SHA1 30\r\n",
                        "\0BEGIN\r\n",                            "\0AUTH EXTERNAL zz\r\nBEGIN\r\n",
                        "\0AUTH EXTERNAL\r\nDATA\r\nBEGIN\r\n",   "\0DATA 30\r\nERROR\r\nCANCEL\r\n",
                        "\0AUTH\r\n\r\n\r\n\r\n",                 "AUTH EXTERNAL 30\r\n", /* no NUL byte */
                        "\0NEGOTIATE_UNIX_FD\r\nBEGIN\r\n",
                };
                const char *l = PICK(lines);
                note("raw: authentication %.40s", l + (l[0] == 0));
                raw_send(fd, l, 1 + strlen(l + 1));
                break;
        }
        case 3:
                note("raw: authenticated, then random bytes");
                if (raw_auth(fd))
                        raw_send(fd, junk, 1 + below(&F.rng, sizeof junk));
                break;
        case 4:
                note("raw: connection left idle (no authentication)");
                idle = true;
                if (chance(&F.rng, 50))
                        raw_send(fd, "\0AUTH EXTERNAL", 14); /* half a line */
                break;
        case 5:
                note("raw: authenticated, then left idle halfway through a message");
                idle = true;
                if (raw_auth(fd)) {
                        struct buf b = { 0 };
                        raw_message(&b, MANAGER_PATH, MANAGER_IF, "ListVolumes", "", NULL, 0, 1, 4);
                        raw_send(fd, b.p, b.len);
                        free(b.p);
                }
                break;
        default: {
                /* an authenticated, hand-built frame with one thing wrong */
                if (!raw_auth(fd))
                        break;
                struct buf body = { 0 };
                const char *sig = "s";
                const char *path = MANAGER_PATH, *member = "GetVolume";
                char badpath[128];
                unsigned mut = 0;
                unsigned what = (unsigned) below(&F.rng, 10);
                switch (what) {
                case 0: { /* invalid UTF-8 in a string */
                        static const char *const bad[] = { "\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "a\xe2\x82",
                                                          "\xf8\x88\x80\x80\x80", "\xef\xbf\xbf" };
                        const char *s = PICK(bad);
                        buf_str(&body, s, strlen(s));
                        member = chance(&F.rng, 50) ? "GetVolume" : "ResolveTarget";
                        break;
                }
                case 1: /* a string without its terminating NUL / with an inner NUL */
                        buf_u32(&body, 4);
                        buf_put(&body, chance(&F.rng, 50) ? "ab\0c" : "abcd", 4);
                        buf_put(&body, "x", 1);
                        break;
                case 2: /* a string longer than the body */
                        buf_u32(&body, 0x7fffffff);
                        buf_put(&body, "abc", 4);
                        break;
                case 3: /* an invalid object path */
                        snprintf(badpath, sizeof badpath, "%s",
                                 (const char *[]){ "/org/lvss/volume/..%2f", "/org/lvss/volume/", "//", "org/lvss",
                                                   "/org/lvss/volume/a b", "/org/lvss/./x", "" }[below(&F.rng, 7)]);
                        path = badpath;
                        member = "Delete";
                        sig = "b";
                        buf_u32(&body, 1);
                        break;
                case 4: /* a boolean that is neither 0 nor 1 */
                        member = "DeleteVolumeShadows";
                        sig = "sb";
                        buf_str(&body, "fz-nonexistent", 14);
                        buf_u32(&body, 2 + (uint32_t) below(&F.rng, 1000));
                        break;
                case 5: { /* an array whose length is not what it holds */
                        member = "DeleteShadows";
                        sig = "as";
                        buf_u32(&body, (uint32_t) (chance(&F.rng, 50) ? 3 : 0x4000000 + below(&F.rng, 1000)));
                        buf_str(&body, "abc", 3);
                        break;
                }
                case 6: /* a signature nested too deep */
                        member = "ListVolumes";
                        sig = "((((((((((((((((((((((((((((((((((((((((y))))))))))))))))))))))))))))))))))))))))";
                        buf_pad(&body, 8);
                        buf_put(&body, "y", 1);
                        break;
                case 7: /* a body that does not match its signature */
                        member = "CreateVolume";
                        sig = "stus";
                        buf_put(&body, junk, 1 + below(&F.rng, 64));
                        break;
                default: /* one of the header mutations */
                        mut = 1 + (unsigned) below(&F.rng, 11);
                        buf_str(&body, "fz0", 3);
                        break;
                }
                struct buf msg = { 0 };
                raw_message(&msg, path, chance(&F.rng, 80) ? MANAGER_IF : NULL, member, sig, body.p, body.len,
                            1 + (uint32_t) below(&F.rng, 1000), mut);
                note("raw: authenticated, a bad frame (kind %u, mutation %u, %s %s(%s))", what, mut, path, member, sig);
                raw_send(fd, msg.p, msg.len);
                if (chance(&F.rng, 50)) { /* and a good call after it */
                        struct buf ok = { 0 };
                        raw_message(&ok, MANAGER_PATH, MANAGER_IF, "ListVolumes", "", NULL, 0, 77777, 0);
                        raw_send(fd, ok.p, ok.len);
                        free(ok.p);
                }
                free(msg.p);
                free(body.p);
                break;
        }
        }
        if (idle && chance(&F.rng, 80)) {
                keep_idle(fd);
                return;
        }
        (void) raw_drain(fd, (int) below(&F.rng, 50));
        if (chance(&F.rng, 30)) {
                /* a reset rather than a close */
                struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                (void) setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
}

/* ---- a writer that answers at once, with anything ---- */

static struct {
        pthread_t thread;
        volatile bool stop;
        bool running;
        unsigned long events, registrations;
        rng_t rng;
        char name[64];
} W;

static const char *const WRITER_ERRORS[] = {
        "org.lvss.Writer.Error.Veto",          "org.lvss.Writer.Error.Retryable",
        "org.lvss.Writer.Error.NonRetryable",  "org.lvss.Writer.Error.OutOfResources",
        "org.lvss.Writer.Error.Timeout",       "org.lvss.Writer.Error.InconsistentSnapshot",
        "org.lvss.Writer.Error.PartialFailure", "org.freedesktop.DBus.Error.Failed", "x.y",
};

static int writer_method(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        (void) userdata;
        (void) error;
        sd_bus_message *reply = NULL;
        const char *member = sd_bus_message_get_member(m);
        bool identify = member && strcmp(member, "Identify") == 0;
        unsigned c = (unsigned) below(&W.rng, 10);
        int r;
        W.events++;
        if (c == 0)
                usleep((useconds_t) below(&W.rng, 200 * 1000));
        if (c == 1) {
                r = sd_bus_reply_method_errorf(m, WRITER_ERRORS[below(&W.rng, ELEMS(WRITER_ERRORS))], "fuzz %s",
                                               member ? member : "");
                return r < 0 ? r : 1;
        }
        r = sd_bus_message_new_method_return(m, &reply);
        if (r < 0)
                return r;
        if (c == 2) { /* the wrong signature */
                r = sd_bus_message_append(reply, "ut", 7u, UINT64_C(8));
        } else if (identify) {
                static const char *const docs[] = {
                        "", "<", "<?xml version=\"1.0\"?><WRITER_METADATA/>", "<a><b><c></c></b></a>",
                        "<!DOCTYPE x [<!ENTITY a \"aaaaaaaaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">]><x>&b;</x>",
                        "<WRITER_METADATA xmlns=\"x-schema:#VssWriterMetadataInfo\"><IDENTIFICATION writerId=\"00000000-0000-0000-0000-000000000000\"/></WRITER_METADATA>",
                };
                if (c == 3) {
                        size_t n = below(&W.rng, 8 * MiB);
                        char *s = malloc(n + 1);
                        if (s) {
                                memset(s, '<', n);
                                s[n] = 0;
                                r = sd_bus_message_append(reply, "s", s);
                                free(s);
                        }
                } else
                        r = sd_bus_message_append(reply, "s", docs[below(&W.rng, ELEMS(docs))]);
        } else {
                /* backup metadata: a{ss}, sometimes large */
                size_t n = below(&W.rng, 4);
                if (c == 4)
                        n = 1000 + below(&W.rng, 5000);
                r = sd_bus_message_open_container(reply, 'a', "{ss}");
                for (size_t i = 0; r >= 0 && i < n; i++) {
                        char k[32];
                        snprintf(k, sizeof k, "comp%zu", i);
                        size_t vl = c == 5 ? 70 * 1024 : 8;
                        char *v = malloc(vl + 1);
                        if (!v) {
                                r = -ENOMEM;
                                break;
                        }
                        memset(v, 'm', vl);
                        v[vl] = 0;
                        r = sd_bus_message_append(reply, "{ss}", k, v);
                        free(v);
                }
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
        }
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        sd_bus_message_unref(reply);
        return r < 0 ? r : 1;
}

static int writer_register(sd_bus *b) {
        sd_bus_message *m = NULL;
        sd_bus_error err = SD_BUS_ERROR_NULL;
        static const char *const levels[] = { "front-end", "back-end", "system" };
        int r = new_call(b, &m, MANAGER_PATH, MANAGER_IF, "RegisterWriter");
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 4, "Name", "s", W.name, "ClassId", "s",
                                          "6f6e9c3a-6a1e-4d39-9a5c-0b4b2b0f1e11", "Level", "s",
                                          levels[below(&W.rng, 3)], "FreezeTimeoutMs", "u", 2000u);
        if (r >= 0)
                r = sd_bus_call(b, m, F.timeout_usec, &err, NULL);
        sd_bus_message_unref(m);
        sd_bus_error_free(&err);
        if (r >= 0)
                W.registrations++;
        return r;
}

static void *writer_main(void *arg) {
        (void) arg;
        sd_bus *b = NULL;
        while (!W.stop) {
                if (!b || sd_bus_is_open(b) <= 0) {
                        b = sd_bus_flush_close_unref(b);
                        if (connect_bus(&b) < 0 ||
                            sd_bus_add_fallback(b, NULL, "/org/lvss/writer", writer_method, NULL) < 0 ||
                            writer_register(b) < 0) {
                                b = sd_bus_flush_close_unref(b);
                                usleep(200 * 1000);
                                continue;
                        }
                }
                int r = sd_bus_process(b, NULL);
                if (r < 0) {
                        b = sd_bus_flush_close_unref(b);
                        continue;
                }
                if (r == 0)
                        (void) sd_bus_wait(b, 100 * 1000);
        }
        sd_bus_flush_close_unref(b);
        return NULL;
}

/* ---- the run ---- */

static void usage(FILE *f) {
        fputs("Usage: lvss-bus-fuzz --address unix:path=SOCKET [--seconds N] [--iterations N] [--seed S]\n"
              "                     [--timeout SEC] [--protect NAME]... [--scratch DIR] [--dump-dir DIR] [--no-writer]\n"
              "                     [--verbose]\n",
              f);
}

static void setup_scratch(void) {
        if (!F.scratch)
                return;
        for (int i = 0; i < 6; i++) {
                char *p = xasprintf("%s/mp%d", F.scratch, i);
                (void) mkdir(p, 0755);
                free(p);
        }
        static const off_t sizes[] = { 0, 511, 1 << 20, 4 << 20 };
        for (int i = 0; i < 4; i++) {
                char *p = xasprintf("%s/img%d", F.scratch, i);
                int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
                if (fd >= 0) {
                        (void) ftruncate(fd, sizes[i]);
                        close(fd);
                }
                free(p);
        }
        char *p = xasprintf("%s/file", F.scratch);
        int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0)
                close(fd);
        free(p);
        /* links into lvssd's own directories and to a host device: lvssd must refuse them */
        /* (never a link to a host device: root may adopt block devices, and lvssd would) */
        const char *targets[][2] = {
                { "volume", NULL }, { "state", F.state_dir }, { "runtime", F.runtime_dir }, { "img", NULL },
        };
        char *vol = NULL, *img = NULL;
        if (F.runtime_dir && F.n_protect)
                vol = xasprintf("%s/dev/volumes/%s", F.runtime_dir, F.protect[0]);
        if (F.state_dir && F.n_protect)
                img = xasprintf("%s/volumes/%s/image", F.state_dir, F.protect[0]);
        targets[0][1] = vol;
        targets[3][1] = img;
        for (size_t i = 0; i < ELEMS(targets); i++) {
                if (!targets[i][1])
                        continue;
                char *l = xasprintf("%s/link-%s", F.scratch, targets[i][0]);
                (void) unlink(l);
                (void) symlink(targets[i][1], l);
                free(l);
        }
        free(vol);
        free(img);
}

static char *get_string_property(const char *name) {
        char *out = NULL;
        sd_bus_error err = SD_BUS_ERROR_NULL;
        if (sd_bus_get_property_string(F.bus, NULL, MANAGER_PATH, MANAGER_IF, name, &err, &out) < 0)
                out = NULL;
        sd_bus_error_free(&err);
        return out;
}

/* Unexposes what the run exposed and detaches the loop devices it attached (not the protected
 * volumes'), so that the test's teardown finds what it made. */
static void tidy_up(void) {
        refresh();
        for (size_t i = 0; i < F.n_exposed; i++) {
                sd_bus_message *m = NULL;
                if (new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "UnexposeShadow") >= 0 &&
                    sd_bus_message_append(m, "s", F.exposed[i]) >= 0)
                        (void) main_call(m, NULL, "UnexposeShadow (tidying up)");
                sd_bus_message_unref(m);
        }
        for (size_t i = 0; i < F.n_volumes; i++) {
                if (is_protected(F.volumes[i]))
                        continue;
                sd_bus_message *m = NULL;
                if (new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "DetachVolume") >= 0 &&
                    sd_bus_message_append(m, "s", F.volumes[i]) >= 0)
                        (void) main_call(m, NULL, "DetachVolume (tidying up)");
                sd_bus_message_unref(m);
        }
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "address", required_argument, NULL, 'a' },  { "seconds", required_argument, NULL, 's' },
                { "iterations", required_argument, NULL, 'n' }, { "seed", required_argument, NULL, 'S' },
                { "timeout", required_argument, NULL, 't' },  { "protect", required_argument, NULL, 'p' },
                { "scratch", required_argument, NULL, 'd' },  { "no-writer", no_argument, NULL, 'W' },
                { "verbose", no_argument, NULL, 'v' },        { "help", no_argument, NULL, 'h' },
                { "dump-dir", required_argument, NULL, 'D' },
                { NULL, 0, NULL, 0 },
        };
        bool have_seed = false;
        F.timeout_usec = 5 * USEC_PER_SEC;
        F.writer = true;
        int c;
        while ((c = getopt_long(argc, argv, "a:s:n:S:t:p:d:D:Wvh", options, NULL)) >= 0) {
                switch (c) {
                case 'a':
                        F.address = optarg;
                        break;
                case 's':
                        F.seconds = strtod(optarg, NULL);
                        break;
                case 'n':
                        F.iterations = strtoul(optarg, NULL, 10);
                        break;
                case 'S':
                        F.seed = strtoull(optarg, NULL, 0);
                        have_seed = true;
                        break;
                case 't':
                        F.timeout_usec = (uint64_t) (strtod(optarg, NULL) * USEC_PER_SEC);
                        break;
                case 'p':
                        if (F.n_protect >= MAX_PROTECT) {
                                fprintf(stderr, "lvss-bus-fuzz: at most %d --protect\n", MAX_PROTECT);
                                return 1;
                        }
                        F.protect[F.n_protect++] = optarg;
                        break;
                case 'd':
                        F.scratch = optarg;
                        break;
                case 'D':
                        F.dump_dir = optarg;
                        break;
                case 'W':
                        F.writer = false;
                        break;
                case 'v':
                        F.verbose = true;
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 1;
                }
        }
        if (!F.address || strncmp(F.address, "unix:path=", 10) != 0 || strlen(F.address + 10) >= sizeof F.socket_path ||
            optind != argc || F.timeout_usec == 0) {
                usage(stderr);
                return 1;
        }
        if (F.seconds <= 0 && F.iterations == 0)
                F.seconds = 30;
        snprintf(F.socket_path, sizeof F.socket_path, "%s", F.address + 10);
        if (!have_seed) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                F.seed = ((uint64_t) ts.tv_sec * 1000003u) ^ (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid() << 32);
        }
        F.rng.s = F.seed ? F.seed : 0x9e3779b97f4a7c15ULL;
        for (int i = 0; i < 8; i++)
                (void) rnd(&F.rng);
        printf("lvss-bus-fuzz: seed %" PRIu64 " (--seed %" PRIu64 " replays it), %s%.0f s, %lu iterations, timeout %.1f s\n",
               F.seed, F.seed, F.seconds > 0 ? "" : "no limit of ", F.seconds, F.iterations,
               (double) F.timeout_usec / USEC_PER_SEC);
        fflush(stdout);

        signal(SIGPIPE, SIG_IGN);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);

        int r = connect_bus(&F.bus);
        if (r < 0) {
                fprintf(stderr, "lvss-bus-fuzz: cannot connect to %s: %s\n", F.address, strerror(-r));
                return 1;
        }
        F.runtime_dir = get_string_property("RuntimeDirectory");
        F.state_dir = get_string_property("StateDirectory");
        refresh();
        for (size_t i = 0; i < F.n_protect; i++) {
                bool found = false;
                for (size_t k = 0; k < F.n_volumes; k++)
                        found |= strcmp(F.volumes[k], F.protect[i]) == 0;
                if (!found)
                        fprintf(stderr, "lvss-bus-fuzz: warning: protected volume %s does not exist\n", F.protect[i]);
        }
        setup_scratch();

        if (F.writer) {
                W.rng.s = F.seed ^ 0x5bd1e995u;
                (void) rnd(&W.rng);
                snprintf(W.name, sizeof W.name, "fuzz-writer-%d", (int) getpid());
                if (pthread_create(&W.thread, NULL, writer_main, NULL) == 0)
                        W.running = true;
        }

        uint64_t start = now_usec();
        uint64_t end = F.seconds > 0 ? start + (uint64_t) (F.seconds * USEC_PER_SEC) : UINT64_MAX;
        for (F.iteration = 0; !stop_requested && (F.iterations == 0 || F.iteration < F.iterations) && now_usec() < end;
             F.iteration++) {
                if (F.iteration % 64 == 0)
                        refresh();
                idle_reap(false);
                unsigned k = (unsigned) below(&F.rng, 100);
                if (k < 45)
                        fuzz_api_method(false);
                else if (k < 50)
                        fuzz_api_method(true);
                else if (k < 62)
                        fuzz_wrong_signature();
                else if (k < 80)
                        fuzz_standard();
                else if (k < 84)
                        fuzz_register_writer();
                else if (k < 86)
                        fuzz_flood();
                else
                        fuzz_raw();
        }
        idle_reap(true);
        if (W.running) {
                W.stop = true;
                pthread_join(W.thread, NULL);
        }
        tidy_up();

        /* The end: lvssd answers the main connection and a new one. */
        sd_bus_message *m = NULL;
        int ok = new_call(F.bus, &m, MANAGER_PATH, MANAGER_IF, "ListVolumes") >= 0 ? main_call(m, NULL, "final ListVolumes")
                                                                             : -EIO;
        sd_bus_message_unref(m);
        sd_bus *fresh = NULL;
        r = connect_bus(&fresh);
        if (r < 0)
                fail_gone("a new connection at the end", r);
        m = NULL;
        int ok2 = new_call(fresh, &m, MANAGER_PATH, "org.freedesktop.DBus.Peer", "Ping") >= 0
                          ? call(fresh, m, NULL, "final Ping")
                          : -EIO;
        sd_bus_message_unref(m);
        sd_bus_flush_close_unref(fresh);

        double secs = (double) (now_usec() - start) / USEC_PER_SEC;
        printf("lvss-bus-fuzz: errors by name:");
        for (size_t i = 0; i < F.n_errnames; i++)
                printf("%s %s %lu", i ? "," : "", F.errnames[i].name, F.errnames[i].count);
        printf("\n");
        printf("lvss-bus-fuzz: iterations %lu, replies %lu, local errors %lu, skipped (protected) %lu, floods %lu, "
               "side calls %lu, reconnects %lu, writer events %lu (registered %lu times)\n",
               F.iteration, F.replies, F.local_errors, F.skipped, F.floods, F.side_calls, F.reconnects, W.events,
               W.registrations);
        printf("calls %lu, errors %lu, garbage connections %lu, seconds %.1f\n", F.calls, F.errors, F.garbage, secs);
        sd_bus_flush_close_unref(F.bus);
        if (ok < 0 || ok2 <= 0) {
                fprintf(stderr, "lvss-bus-fuzz: lvssd did not answer at the end (seed %" PRIu64 ")\n", F.seed);
                return 1;
        }
        return 0;
}
