/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bkp_verify: a backup and its chain of bases, checked whole. Opening each backup of the chain
 * checks its manifest (its own checksum), backup.xml and the writers' documents; then every list is
 * read against the manifest and parsed; then every tar is read once, in order, each entry matched
 * with the line of its list that names this backup (metadata, and the SHA-256 of a file's content
 * as it is read), lines naming this backup without an entry refused, and the tar file's own
 * checksum compared with the manifest at its end. Last, every line naming an earlier backup must be
 * found, the same, in that backup's list: so whatever a restore of any backup of the chain would
 * need is there and intact. No state beyond the call.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

struct verifier {
        struct bkp_chain chain;
        struct bkp_list *lists; /* [backup * n_targets + target] */
        size_t n_targets;
        struct bkp_ticker tick;
        char *err;
};

static int on_data(const void *p, size_t n, uint64_t offset, void *userdata) {
        struct verifier *v = userdata;
        v->tick.p.bytes_done += n;
        return bkp_tick(&v->tick, false, v->err);
}

static int missing(struct verifier *v, const struct bkp_backup *b, const char *tar,
                   const struct bkp_entry *e) {
        char p[BKP_PRETTY_MAX];
        return bkp_errorf(v->err, -EBADMSG,
                          "entry %s is missing from %s of backup %s, though its list says it is stored "
                          "there: the backup is damaged; use another one",
                          bkp_pretty(e->path, p), tar, b->path);
}

static int verify_tar(struct verifier *v, struct bkp_backup *b, const char *target,
                      const struct bkp_list *l) {
        char tar[BKP_TARGET_NAME_MAX + 8], p[BKP_PRETTY_MAX];
        snprintf(tar, sizeof(tar), "%s.tar", target);
        _cleanup_(bkp_tar_freep) struct bkp_tar *t = NULL;
        int r = bkp_tar_open(b, tar, &t, v->err);
        if (r < 0)
                return r;
        const char *own = b->doc->id;
        size_t k = 0;
        for (;;) {
                const struct bkp_tar_entry *te;
                r = bkp_tar_next(t, &te, v->err);
                if (r <= 0)
                        break;
                while (k < l->n && strcmp(l->entries[k].id, own) != 0)
                        k++;
                if (k < l->n && bkp_path_compare(l->entries[k].path, te->path) < 0)
                        return missing(v, b, tar, &l->entries[k]);
                if (k == l->n || bkp_path_compare(l->entries[k].path, te->path) != 0)
                        return bkp_errorf(v->err, -EBADMSG,
                                          "%s of backup %s holds entry %s, which its list does not name as "
                                          "stored there: the backup is damaged; use another one",
                                          tar, b->path, bkp_pretty(te->path, p));
                const struct bkp_entry *e = &l->entries[k++];
                r = bkp_tar_entry_check(te, e, b->path, tar, v->err);
                if (r < 0)
                        return r;
                if (e->type == BKP_ENTRY_FILE) {
                        uint8_t sha[BKP_SHA256_LEN];
                        r = bkp_tar_read_data(t, on_data, v, sha, v->err);
                        if (r < 0)
                                return r;
                        if (memcmp(sha, e->sha256, BKP_SHA256_LEN) != 0)
                                return bkp_errorf(
                                        v->err, -EBADMSG,
                                        "the content of %s in %s of backup %s does not match its checksum "
                                        "in the list: the backup is damaged; use another one",
                                        bkp_pretty(e->path, p), tar, b->path);
                }
                v->tick.p.files_done++;
                r = bkp_tick(&v->tick, false, v->err);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        for (; k < l->n; k++)
                if (strcmp(l->entries[k].id, own) == 0)
                        return missing(v, b, tar, &l->entries[k]);
        return bkp_tar_finish(t, v->err);
}

/* Every line of backup I naming another backup is found, the same, in that one's list. */
static int cross_check(struct verifier *v, size_t i, size_t ti) {
        char p[BKP_PRETTY_MAX];
        const struct bkp_backup *b = v->chain.items[i];
        const struct bkp_list *l = &v->lists[i * v->n_targets + ti];
        const char *target = b->doc->targets[ti].name;
        for (size_t k = 0; k < l->n; k++) {
                const struct bkp_entry *e = &l->entries[k];
                if (strcmp(e->id, b->doc->id) == 0)
                        continue;
                size_t j;
                for (j = i + 1; j < v->chain.n; j++)
                        if (strcmp(v->chain.items[j]->doc->id, e->id) == 0)
                                break;
                if (j == v->chain.n)
                        return bkp_errorf(v->err, -EBADMSG,
                                          "%s.list of backup %s names backup %s for %s, which is not one of "
                                          "its bases: the backup is damaged; use another one",
                                          target, b->path, e->id, bkp_pretty(e->path, p));
                const struct bkp_backup *base = v->chain.items[j];
                size_t bt;
                for (bt = 0; bt < base->doc->n_targets; bt++)
                        if (strcmp(base->doc->targets[bt].name, target) == 0)
                                break;
                const struct bkp_entry *f =
                        bt < base->doc->n_targets ? bkp_list_find(&v->lists[j * v->n_targets + bt], e->path)
                                                  : NULL;
                if (!f || !bkp_entry_equal(e, f))
                        return bkp_errorf(v->err, -EBADMSG,
                                          "entry %s of %s.list of backup %s is not the same in base %s, "
                                          "which should hold it: the backups do not match; use another one",
                                          bkp_pretty(e->path, p), target, b->path, base->path);
        }
        return 0;
}

int bkp_verify(const char *dir, bkp_progress_fn progress, void *userdata, char err[BKP_ERR_MAX]) {
        if (!dir)
                return bkp_errorf(err, -EINVAL, "no backup directory given");
        struct verifier v = { .err = err, .tick = { .fn = progress, .userdata = userdata } };
        int r = bkp_chain_open(dir, &v.chain, err);
        if (r < 0)
                return r;

        if (v.chain.items[0]->doc->image) {
                r = bkp_image_verify(&v.chain, &v.tick, err);
                if (r >= 0)
                        r = bkp_tick(&v.tick, true, err);
                goto finish;
        }

        /* Every backup of a chain has the same targets (bkp_chain_open checks). */
        v.n_targets = v.chain.items[0]->doc->n_targets;
        v.lists = calloc(MAX(v.chain.n * v.n_targets, (size_t) 1), sizeof(*v.lists));
        if (!v.lists) {
                r = -ENOMEM;
                goto finish;
        }
        for (size_t i = 0; i < v.chain.n; i++) {
                struct bkp_backup *b = v.chain.items[i];
                for (size_t t = 0; t < v.n_targets; t++) {
                        struct bkp_list *l = &v.lists[i * v.n_targets + t];
                        r = bkp_backup_load_list(b, b->doc->targets[t].name, l, err);
                        if (r < 0)
                                goto finish;
                        for (size_t k = 0; k < l->n; k++)
                                if (strcmp(l->entries[k].id, b->doc->id) == 0) {
                                        v.tick.p.files_total++;
                                        if (l->entries[k].type == BKP_ENTRY_FILE)
                                                v.tick.p.bytes_total += l->entries[k].size;
                                }
                }
        }
        r = bkp_tick(&v.tick, true, err);
        if (r < 0)
                goto finish;

        for (size_t i = 0; i < v.chain.n; i++)
                for (size_t t = 0; t < v.n_targets; t++) {
                        struct bkp_backup *b = v.chain.items[i];
                        r = verify_tar(&v, b, b->doc->targets[t].name, &v.lists[i * v.n_targets + t]);
                        if (r < 0)
                                goto finish;
                }
        for (size_t i = 0; i < v.chain.n; i++)
                for (size_t t = 0; t < v.n_targets; t++) {
                        r = cross_check(&v, i, t);
                        if (r < 0)
                                goto finish;
                }
        r = bkp_tick(&v.tick, true, err);
finish:
        if (v.lists)
                for (size_t i = 0; i < v.chain.n * v.n_targets; i++)
                        bkp_list_release(&v.lists[i]);
        free(v.lists);
        bkp_chain_release(&v.chain);
        return r < 0 ? r : 0;
}
