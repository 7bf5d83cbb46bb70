/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* libFuzzer over the Backup Components Document parser (backup/bcd.c), which reads backup.xml of
 * backup directories: any bytes must be parsed or refused, never crash; what is accepted passes the
 * document's rules and writes out canonically: parsing that output and writing it again gives the
 * same bytes and the same document. */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/backup-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_abort(const struct bkp_document *a, const struct bkp_document *b) {
        if (strcmp(a->id, b->id) != 0 || a->type != b->type || a->created_usec != b->created_usec ||
            strcmp(a->set_id, b->set_id) != 0 || strcmp(a->base_id, b->base_id) != 0 ||
            !a->base_path != !b->base_path || (a->base_path && strcmp(a->base_path, b->base_path) != 0) ||
            a->n_targets != b->n_targets || a->n_components != b->n_components ||
            a->n_writer_documents != b->n_writer_documents)
                abort();
        for (size_t i = 0; i < a->n_targets; i++)
                if (strcmp(a->targets[i].name, b->targets[i].name) != 0 ||
                    !a->targets[i].origin != !b->targets[i].origin ||
                    (a->targets[i].origin && strcmp(a->targets[i].origin, b->targets[i].origin) != 0))
                        abort();
        for (size_t i = 0; i < a->n_components; i++)
                if (strcmp(a->components[i].name, b->components[i].name) != 0 ||
                    a->components[i].succeeded != b->components[i].succeeded ||
                    !a->components[i].backup_metadata != !b->components[i].backup_metadata ||
                    (a->components[i].backup_metadata &&
                     strcmp(a->components[i].backup_metadata, b->components[i].backup_metadata) != 0))
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct bkp_document *a = NULL, *b = NULL;
        int r = bkp_document_from_xml((const char *) data, size, &a);
        if (r < 0) {
                if (r != -EBADMSG && r != -EFBIG && r != -ENOMEM)
                        abort();
                return 0;
        }
        if (bkp_document_validate(a) < 0)
                abort();

        char *x1 = NULL, *x2 = NULL;
        size_t n1, n2;
        r = bkp_document_to_xml(a, &x1, &n1);
        if (r == -EFBIG) { /* escaping can make a near-limit input too big */
                bkp_document_free(a);
                return 0;
        }
        if (r < 0 || n1 != strlen(x1))
                abort();
        if (bkp_document_from_xml(x1, n1, &b) < 0)
                abort();
        same_or_abort(a, b);
        if (bkp_document_to_xml(b, &x2, &n2) < 0)
                abort();
        if (n1 != n2 || memcmp(x1, x2, n1) != 0)
                abort();

        free(x1);
        free(x2);
        bkp_document_free(a);
        bkp_document_free(b);
        return 0;
}
