/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The Backup Components Document: its rules, its XML form (layout at the top of backup.c) written
 * with libxml2's text writer, and its strict parser, which sees backup.xml of backup directories:
 * untrusted input. As in lib/wmd.c: the input must be UTF-8 without NUL bytes before libxml2 sees it,
 * a DOCTYPE stops the parser at once (no entity is ever declared), nothing is loaded from the network
 * or the file system, libxml2's error handlers are silenced around each call, elements and attributes
 * we do not know are refused, and what is parsed passes the same rules (bkp_document_validate) as
 * what is written. Output is canonical: parsing it and writing it again gives the same bytes.
 * No global state; no locking.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlwriter.h>

#include "backup/backup-internal.h"
#include "common/macro.h"

#define BCD_NAMESPACE "urn:lvss:bcd:1"

static const char *const type_table[_BKP_TYPE_MAX] = {
        [BKP_FULL] = "full",
        [BKP_INCREMENTAL] = "incremental",
        [BKP_DIFFERENTIAL] = "differential",
        [BKP_COPY] = "copy",
        [BKP_LOG] = "log",
};

const char *bkp_type_to_string(bkp_type t) {
        return (int) t >= 0 && t < _BKP_TYPE_MAX ? type_table[t] : NULL;
}

int bkp_type_from_string(const char *s) {
        if (!s)
                return -EINVAL;
        for (int i = 0; i < _BKP_TYPE_MAX; i++)
                if (strcmp(type_table[i], s) == 0)
                        return i;
        return -EINVAL;
}

void bkp_document_free(struct bkp_document *d) {
        if (!d)
                return;
        free(d->base_path);
        for (size_t i = 0; i < d->n_targets; i++) {
                free((char *) d->targets[i].name);
                free((char *) d->targets[i].root);
                free((char *) d->targets[i].origin);
                free((char *) d->targets[i].shadow_id);
        }
        free(d->targets);
        for (size_t i = 0; i < d->n_components; i++) {
                struct bkp_component *c = &d->components[i];
                free((char *) c->writer);
                free((char *) c->writer_class_id);
                free((char *) c->logical_path);
                free((char *) c->name);
                free((char *) c->backup_metadata);
        }
        free(d->components);
        for (size_t i = 0; i < d->n_writer_documents; i++)
                free(d->writer_documents[i]);
        free(d->writer_documents);
        free(d);
}

/* ---- rules ---- */

/* Length of the UTF-8 sequence at S (N bytes at most) and its code point; 0 if malformed. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *ret_cp) {
        uint32_t cp;
        size_t len;
        if (s[0] < 0x80) {
                *ret_cp = s[0];
                return 1;
        } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                cp = s[0] & 0x1f;
                len = 2;
        } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                cp = s[0] & 0x0f;
                len = 3;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                cp = s[0] & 0x07;
                len = 4;
        } else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        *ret_cp = cp;
        return len;
}

static bool utf8_valid(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_decode(p + i, n - i, &cp);
                if (len == 0 || cp == 0)
                        return false;
                i += len;
        }
        return true;
}

bool bkp_text_valid(const char *s, size_t max, bool multiline) {
        if (!s)
                return false;
        size_t n = strnlen(s, max + 1);
        if (n == 0 || n > max)
                return false;
        const uint8_t *p = (const uint8_t *) s;
        for (size_t i = 0; i < n;) {
                uint32_t cp;
                size_t len = utf8_decode(p + i, n - i, &cp);
                if (len == 0)
                        return false;
                if (cp < 0x20 && !(multiline && (cp == '\t' || cp == '\n' || cp == '\r')))
                        return false;
                if ((cp >= 0x7f && cp <= 0x9f) || cp == 0xfffe || cp == 0xffff)
                        return false;
                i += len;
        }
        return true;
}

/* A file system path of at most BKP_PATH_MAX bytes; absolute if ABSOLUTE. */
static bool fs_path_valid(const char *s, bool absolute) {
        size_t n = strnlen(s, BKP_PATH_MAX + 1);
        return n > 0 && n <= BKP_PATH_MAX && (!absolute || s[0] == '/');
}

int bkp_document_validate(const struct bkp_document *d) {
        if (!d || !bkp_uuid_valid(d->id) || !bkp_type_to_string(d->type) ||
            (d->set_id[0] && !bkp_uuid_valid(d->set_id)))
                return -EINVAL;
        bool chained = d->type == BKP_INCREMENTAL || d->type == BKP_DIFFERENTIAL || d->type == BKP_LOG;
        if (chained != (d->base_id[0] != '\0') || chained != !!d->base_path)
                return -EINVAL;
        if (d->image && d->type == BKP_LOG)
                return -EINVAL;
        if (chained && (!bkp_uuid_valid(d->base_id) || !fs_path_valid(d->base_path, true) ||
                        strcmp(d->base_id, d->id) == 0))
                return -EINVAL;
        if (d->n_targets > BKP_MAX_TARGETS || d->n_components > BKP_MAX_COMPONENTS ||
            d->n_writer_documents > BKP_MAX_WRITER_DOCUMENTS || (d->n_targets > 0 && !d->targets) ||
            (d->n_components > 0 && !d->components))
                return -EINVAL;
        for (size_t i = 0; i < d->n_targets; i++) {
                const struct bkp_target *t = &d->targets[i];
                if (!t->name || !bkp_target_name_valid(t->name) ||
                    (t->origin && !fs_path_valid(t->origin, false)))
                        return -EINVAL;
                if (d->image ? !bkp_image_geometry_valid(t->size, t->chunk_size) ||
                                       (t->shadow_id && !bkp_uuid_valid(t->shadow_id))
                             : t->size || t->chunk_size || t->shadow_id)
                        return -EINVAL;
                for (size_t j = 0; j < i; j++)
                        if (strcmp(d->targets[j].name, t->name) == 0)
                                return -EINVAL;
        }
        for (size_t i = 0; i < d->n_components; i++) {
                const struct bkp_component *c = &d->components[i];
                if (!bkp_text_valid(c->writer, BKP_TEXT_MAX, false) || !c->writer_class_id ||
                    !bkp_uuid_valid(c->writer_class_id) || !bkp_text_valid(c->name, BKP_TEXT_MAX, false) ||
                    (c->logical_path && !bkp_text_valid(c->logical_path, BKP_TEXT_MAX, false)) ||
                    (c->backup_metadata && !bkp_text_valid(c->backup_metadata, BKP_METADATA_MAX, true)))
                        return -EINVAL;
        }
        return 0;
}

/* ---- keeping libxml2 quiet (as lib/wmd.c) ---- */

#if LIBXML_VERSION >= 21200
typedef const xmlError *xml_error_arg;
#else
typedef xmlErrorPtr xml_error_arg;
#endif

static void silent_generic_error(void *ctx, const char *msg, ...) {
}

static void silent_structured_error(void *ctx, xml_error_arg error) {
}

struct xml_silence {
        xmlGenericErrorFunc generic;
        void *generic_ctx;
        xmlStructuredErrorFunc structured;
        void *structured_ctx;
};

/* libxml2's own set-up is not thread-safe: done once, when the program starts. */
static void __attribute__((constructor)) bcd_init_libxml2(void) {
        xmlInitParser();
}

static void xml_silence_begin(struct xml_silence *s) {
        *s = (struct xml_silence){
                .generic = xmlGenericError,
                .generic_ctx = xmlGenericErrorContext,
                .structured = xmlStructuredError,
                .structured_ctx = xmlStructuredErrorContext,
        };
        xmlSetGenericErrorFunc(NULL, silent_generic_error);
        xmlSetStructuredErrorFunc(NULL, silent_structured_error);
}

static void xml_silence_end(struct xml_silence *s) {
        xmlSetGenericErrorFunc(s->generic_ctx, s->generic);
        xmlSetStructuredErrorFunc(s->structured_ctx, s->structured);
}

/* ---- writing ---- */

#define W(call)                                                                                             \
        do {                                                                                                \
                if ((call) < 0)                                                                             \
                        return -ENOMEM;                                                                     \
        } while (0)

/* One empty element with ATTRS (name, value pairs, NULL name last; NULL values left out). */
static int write_element(xmlTextWriterPtr w, const char *element, const char *const *attrs) {
        W(xmlTextWriterStartElement(w, BAD_CAST element));
        for (; attrs[0]; attrs += 2)
                if (attrs[1])
                        W(xmlTextWriterWriteAttribute(w, BAD_CAST attrs[0], BAD_CAST attrs[1]));
        W(xmlTextWriterEndElement(w));
        return 0;
}

/* PATH escaped as in the list, into B (released by the caller). */
static int escape_path(const char *path, struct bkp_buf *b) {
        if (!path)
                return 0;
        return bkp_escape(b, path);
}

static int write_document(xmlTextWriterPtr w, const struct bkp_document *d) {
        int r;
        W(xmlTextWriterSetIndent(w, 1));
        W(xmlTextWriterSetIndentString(w, BAD_CAST "  "));
        W(xmlTextWriterStartDocument(w, "1.0", "UTF-8", NULL));
        W(xmlTextWriterStartElement(w, BAD_CAST "backup"));
        W(xmlTextWriterWriteAttribute(w, BAD_CAST "xmlns", BAD_CAST BCD_NAMESPACE));
        W(xmlTextWriterWriteAttribute(w, BAD_CAST "version", BAD_CAST "1"));

        char created[32];
        snprintf(created, sizeof(created), "%" PRIu64, d->created_usec);
        r = write_element(w, "identity",
                          (const char *const[]){ "id", d->id, "type", type_table[d->type], "created",
                                                 created, "set-id", d->set_id[0] ? d->set_id : NULL, "kind",
                                                 d->image ? "image" : NULL, NULL });
        if (r < 0)
                return r;

        if (d->base_id[0]) {
                struct bkp_buf p = {};
                r = escape_path(d->base_path, &p);
                if (r >= 0)
                        r = write_element(w, "base",
                                          (const char *const[]){ "id", d->base_id, "path", p.data, NULL });
                bkp_buf_release(&p);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < d->n_targets; i++) {
                const struct bkp_target *t = &d->targets[i];
                struct bkp_buf o = {};
                char size[32], chunk[16];
                snprintf(size, sizeof(size), "%" PRIu64, t->size);
                snprintf(chunk, sizeof(chunk), "%" PRIu32, t->chunk_size);
                r = escape_path(t->origin, &o);
                if (r >= 0)
                        r = write_element(w, "target",
                                          (const char *const[]){ "name", t->name, "origin", o.data, "size",
                                                                 d->image ? size : NULL, "chunk-size",
                                                                 d->image ? chunk : NULL, "shadow-id",
                                                                 t->shadow_id, NULL });
                bkp_buf_release(&o);
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < d->n_components; i++) {
                const struct bkp_component *c = &d->components[i];
                r = write_element(w, "component",
                                  (const char *const[]){ "writer", c->writer, "writer-class-id",
                                                         c->writer_class_id, "logical-path", c->logical_path,
                                                         "name", c->name, "succeeded",
                                                         c->succeeded ? "true" : "false", "backup-metadata",
                                                         c->backup_metadata, NULL });
                if (r < 0)
                        return r;
        }

        for (size_t i = 0; i < d->n_writer_documents; i++) {
                char file[48];
                snprintf(file, sizeof(file), "writers/%zu.xml", i);
                r = write_element(w, "writer-document", (const char *const[]){ "file", file, NULL });
                if (r < 0)
                        return r;
        }

        W(xmlTextWriterEndElement(w));
        W(xmlTextWriterEndDocument(w));
        W(xmlTextWriterFlush(w));
        return 0;
}

int bkp_document_to_xml(const struct bkp_document *d, char **ret, size_t *ret_len) {
        if (!ret || bkp_document_validate(d) < 0)
                return -EINVAL;

        struct xml_silence silence;
        xml_silence_begin(&silence);
        int r = -ENOMEM;
        xmlTextWriterPtr w = NULL;
        xmlBufferPtr buf = xmlBufferCreate();
        if (buf)
                w = xmlNewTextWriterMemory(buf, 0);
        if (w)
                r = write_document(w, d);
        xmlFreeTextWriter(w);
        if (r >= 0) {
                size_t len = (size_t) xmlBufferLength(buf);
                char *s = len <= BKP_XML_MAX ? malloc(len + 1) : NULL;
                if (len > BKP_XML_MAX)
                        r = -EFBIG;
                else if (!s)
                        r = -ENOMEM;
                else {
                        memcpy(s, xmlBufferContent(buf), len);
                        s[len] = '\0';
                        *ret = s;
                        if (ret_len)
                                *ret_len = len;
                }
        }
        xmlBufferFree(buf);
        xml_silence_end(&silence);
        return r;
}

/* ---- parsing ---- */

#define NS_HREF BAD_CAST BCD_NAMESPACE
#define S(x) ((const char *) (x))
#define MAX_ATTRS 8

static inline void xml_freep(xmlChar **p) {
        if (*p)
                xmlFree(*p);
}

static void free_attrs(xmlChar *(*values)[MAX_ATTRS]) {
        for (size_t i = 0; i < MAX_ATTRS; i++)
                xml_freep(&(*values)[i]);
}

#define _cleanup_attrs_ _cleanup_(free_attrs)

static bool is_element(const xmlNode *n, const char *name) {
        return n->type == XML_ELEMENT_NODE && n->ns && xmlStrEqual(n->ns->href, NS_HREF) &&
               xmlStrEqual(n->name, BAD_CAST name);
}

/* Children of N: elements of our namespace (if ELEMENTS), comments and blank text only. */
static int check_children(const xmlNode *n, bool elements) {
        for (const xmlNode *c = n->children; c; c = c->next)
                switch (c->type) {
                case XML_ELEMENT_NODE:
                        if (!elements || !c->ns || !xmlStrEqual(c->ns->href, NS_HREF))
                                return -EBADMSG;
                        break;
                case XML_COMMENT_NODE:
                        break;
                case XML_TEXT_NODE:
                        if (!xmlIsBlankNode(c))
                                return -EBADMSG;
                        break;
                default:
                        return -EBADMSG;
                }
        return 0;
}

/* N's attributes named in NAMES (NULL-terminated; a leading '?' marks one optional) into VALUES; any
 * other attribute, or a missing one, is refused. Also checks N's children. */
static int get_attrs(const xmlNode *n, const char *const *names, bool elements, xmlChar *values[MAX_ATTRS]) {
        for (const xmlAttr *a = n->properties; a; a = a->next) {
                if (a->ns)
                        return -EBADMSG;
                size_t i;
                for (i = 0; names[i]; i++)
                        if (xmlStrEqual(a->name, BAD_CAST(names[i] + (names[i][0] == '?'))))
                                break;
                if (!names[i] || values[i])
                        return -EBADMSG;
                values[i] = xmlNodeGetContent((const xmlNode *) a);
                if (!values[i])
                        return -ENOMEM;
        }
        for (size_t i = 0; names[i]; i++)
                if (!values[i] && names[i][0] != '?')
                        return -EBADMSG;
        return check_children(n, elements);
}

static int dup_attr(const xmlChar *v, const char **ret) {
        if (!v) {
                *ret = NULL;
                return 0;
        }
        char *s = strdup(S(v));
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

/* An escaped path attribute into *RET (NULL if absent). */
static int unescape_attr(const xmlChar *v, char **ret) {
        if (!v) {
                *ret = NULL;
                return 0;
        }
        int r = bkp_unescape(S(v), strlen(S(v)), ret);
        return r == -ENOMEM ? r : r < 0 ? -EBADMSG : 0;
}

static int copy_id(const xmlChar *v, char ret[BKP_ID_LEN + 1]) {
        if (!bkp_uuid_valid(S(v)))
                return -EBADMSG;
        memcpy(ret, v, BKP_ID_LEN + 1);
        return 0;
}

/* A decimal number without sign or leading zeros, at most MAX. */
static int parse_number(const char *c, uint64_t max, uint64_t *ret) {
        size_t n_c = strlen(c);
        if (n_c == 0 || n_c > 20 || strspn(c, "0123456789") != n_c || (n_c > 1 && c[0] == '0'))
                return -EBADMSG;
        uint64_t v = 0;
        for (size_t i = 0; i < n_c; i++) {
                unsigned dgt = (unsigned) (c[i] - '0');
                if (v > (UINT64_MAX - dgt) / 10)
                        return -EBADMSG;
                v = v * 10 + dgt;
        }
        if (v > max)
                return -EBADMSG;
        *ret = v;
        return 0;
}

static int parse_identity(const xmlNode *n, struct bkp_document *d) {
        static const char *const names[] = { "id", "type", "created", "?set-id", "?kind", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        if (copy_id(v[0], d->id) < 0 || (v[3] && copy_id(v[3], d->set_id) < 0))
                return -EBADMSG;
        r = bkp_type_from_string(S(v[1]));
        if (r < 0)
                return -EBADMSG;
        d->type = r;
        if (v[4] && !xmlStrEqual(v[4], BAD_CAST "image"))
                return -EBADMSG;
        d->image = v[4] != NULL;
        return parse_number(S(v[2]), UINT64_MAX, &d->created_usec);
}

static int parse_base(const xmlNode *n, struct bkp_document *d) {
        static const char *const names[] = { "id", "path", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        if (copy_id(v[0], d->base_id) < 0)
                return -EBADMSG;
        return unescape_attr(v[1], &d->base_path);
}

static int parse_target(const xmlNode *n, bool image, struct bkp_target *t) {
        static const char *const names[] = { "name", "?origin", "?size", "?chunk-size", "?shadow-id", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        if (image != (v[2] && v[3]) || (!image && v[4]))
                return -EBADMSG;
        uint64_t chunk = 0;
        if (image && (parse_number(S(v[2]), UINT64_MAX, &t->size) < 0 ||
                      parse_number(S(v[3]), UINT32_MAX, &chunk) < 0))
                return -EBADMSG;
        t->chunk_size = (uint32_t) chunk;
        if (v[4] && (r = dup_attr(v[4], &t->shadow_id)) < 0)
                return r;
        char *origin;
        r = unescape_attr(v[1], &origin);
        if (r < 0)
                return r;
        t->origin = origin;
        return dup_attr(v[0], &t->name);
}

static int parse_component(const xmlNode *n, struct bkp_component *c) {
        static const char *const names[] = { "writer", "writer-class-id", "?logical-path",
                                             "name",   "succeeded",       "?backup-metadata",
                                             NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        if (xmlStrEqual(v[4], BAD_CAST "true"))
                c->succeeded = true;
        else if (!xmlStrEqual(v[4], BAD_CAST "false"))
                return -EBADMSG;
        if ((r = dup_attr(v[0], &c->writer)) < 0 || (r = dup_attr(v[1], &c->writer_class_id)) < 0 ||
            (r = dup_attr(v[2], &c->logical_path)) < 0 || (r = dup_attr(v[3], &c->name)) < 0 ||
            (r = dup_attr(v[5], &c->backup_metadata)) < 0)
                return r;
        return 0;
}

static int parse_writer_document(const xmlNode *n, size_t index) {
        static const char *const names[] = { "file", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(n, names, false, v);
        if (r < 0)
                return r;
        char file[48];
        snprintf(file, sizeof(file), "writers/%zu.xml", index);
        return xmlStrEqual(v[0], BAD_CAST file) ? 0 : -EBADMSG;
}

static int parse_root(const xmlNode *root, struct bkp_document **ret) {
        if (!is_element(root, "backup"))
                return -EBADMSG;
        static const char *const names[] = { "version", NULL };
        _cleanup_attrs_ xmlChar *v[MAX_ATTRS] = {};
        int r = get_attrs(root, names, true, v);
        if (r < 0)
                return r;
        if (!xmlStrEqual(v[0], BAD_CAST "1"))
                return -EBADMSG;

        size_t n_identity = 0, n_base = 0, n_targets = 0, n_components = 0, n_docs = 0;
        for (const xmlNode *e = root->children; e; e = e->next) {
                if (e->type != XML_ELEMENT_NODE)
                        continue;
                if (is_element(e, "identity"))
                        n_identity++;
                else if (is_element(e, "base"))
                        n_base++;
                else if (is_element(e, "target"))
                        n_targets++;
                else if (is_element(e, "component"))
                        n_components++;
                else if (is_element(e, "writer-document"))
                        n_docs++;
                else
                        return -EBADMSG;
        }
        if (n_identity != 1 || n_base > 1 || n_targets > BKP_MAX_TARGETS ||
            n_components > BKP_MAX_COMPONENTS || n_docs > BKP_MAX_WRITER_DOCUMENTS)
                return -EBADMSG;

        _cleanup_(bkp_document_freep) struct bkp_document *d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->targets = calloc(MAX(n_targets, (size_t) 1), sizeof(*d->targets));
        d->components = calloc(MAX(n_components, (size_t) 1), sizeof(*d->components));
        d->writer_documents = calloc(MAX(n_docs, (size_t) 1), sizeof(char *));
        if (!d->targets || !d->components || !d->writer_documents)
                return -ENOMEM;

        /* The identity first: it says what the targets are. */
        for (const xmlNode *e = root->children; e; e = e->next)
                if (e->type == XML_ELEMENT_NODE && is_element(e, "identity") && (r = parse_identity(e, d)) < 0)
                        return r;
        for (const xmlNode *e = root->children; e; e = e->next) {
                if (e->type != XML_ELEMENT_NODE || is_element(e, "identity"))
                        continue;
                if (is_element(e, "base"))
                        r = parse_base(e, d);
                else if (is_element(e, "target"))
                        r = parse_target(e, d->image, &d->targets[d->n_targets++]);
                else if (is_element(e, "component"))
                        r = parse_component(e, &d->components[d->n_components++]);
                else
                        r = parse_writer_document(e, d->n_writer_documents++);
                if (r < 0)
                        return r;
        }
        if (bkp_document_validate(d) < 0)
                return -EBADMSG;
        *ret = TAKE_PTR(d);
        return 0;
}

static int parse_document(const xmlDoc *doc, struct bkp_document **ret) {
        if (doc->intSubset || doc->extSubset)
                return -EBADMSG;
        const xmlNode *root = NULL;
        for (const xmlNode *n = doc->children; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE)
                        root = n;
                else if (n->type != XML_COMMENT_NODE)
                        return -EBADMSG;
        if (!root)
                return -EBADMSG;
        return parse_root(root, ret);
}

/* SAX: a DOCTYPE was met. Stop before its internal subset is read, so no entity gets declared. */
static void on_doctype(void *ctx, const xmlChar *name, const xmlChar *external_id,
                       const xmlChar *system_id) {
        xmlParserCtxtPtr ctxt = ctx;
        *(bool *) ctxt->_private = true;
        ctxt->wellFormed = 0;
        xmlStopParser(ctxt);
}

int bkp_document_from_xml(const char *xml, size_t len, struct bkp_document **ret) {
        if ((!xml && len > 0) || !ret)
                return -EINVAL;
        if (len > BKP_XML_MAX)
                return -EFBIG;
        if (len == 0 || !utf8_valid(xml, len))
                return -EBADMSG;

        struct xml_silence silence;
        xml_silence_begin(&silence);
        int r = -ENOMEM;
        bool doctype = false;
        xmlDocPtr doc = NULL;
        xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
        if (ctxt) {
                ctxt->_private = &doctype;
                ctxt->sax->internalSubset = on_doctype;
                ctxt->sax->serror = silent_structured_error;
                doc = xmlCtxtReadMemory(ctxt, xml, (int) len, NULL, "UTF-8",
                                        XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
                                                XML_PARSE_NOWARNING | XML_PARSE_IGNORE_ENC);
                if (doctype)
                        r = -EBADMSG;
                else if (!doc)
                        r = ctxt->errNo == XML_ERR_NO_MEMORY ? -ENOMEM : -EBADMSG;
                else
                        r = parse_document(doc, ret);
        }
        xmlFreeDoc(doc);
        xmlFreeParserCtxt(ctxt);
        xml_silence_end(&silence);
        return r;
}
