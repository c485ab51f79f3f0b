/*
 * tokenizer.c: bert4keras's Tokenizer in C (see tokenizer.h for the rules).
 *
 * Text is decoded to code points once; lowercase (utf8proc simple mapping,
 * which agrees with Python's str.lower() on everything but the final-sigma
 * rule, whose letters are not in the released vocabularies), NFD and the
 * character classes come from utf8proc.  The vocabulary is an open-addressed
 * hash table of UTF-8 strings.
 */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "hash.h"

#define WORD_MAXLEN 200   /* bert4keras _word_maxlen, in code points */

struct entry {
    char *key;            /* NUL-terminated UTF-8 */
    size_t len;
    int id;
};

struct tok_vocab {
    struct entry *slots;  /* open addressing; key NULL = empty */
    size_t n_slots;       /* power of two */
    size_t n_keys;
    char **inv;           /* [n_ids] id -> token (borrowed from slots), may hold NULL */
    int n_ids;
    int max_token_cps;    /* longest token, in code points */
    struct tok_special sp;
};

/* --- character classes ---------------------------------------------------- */

static int
is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int
is_punct(int32_t c)
{
    utf8proc_category_t cat;

    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* bert4keras _is_space: ' ', \n, \r, \t or category Zs. */
static int
is_space(int32_t c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' ||
           utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

/* Python's str.isspace(), which str.split() and str.strip() use. */
static int
is_py_space(int32_t c)
{
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static int
is_dropped(int32_t c)
{
    utf8proc_category_t cat;

    if (c == 0 || c == 0xFFFD)
        return 1;
    cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF;
}

/* Decode UTF-8 into a new code point array; -1 on invalid input. */
static int
utf8_decode(const char *s, size_t len, int32_t **out, size_t *n_out)
{
    int32_t *cps = malloc((len + 1) * sizeof(*cps));
    size_t n = 0, i = 0;

    if (cps == NULL)
        return RS_ENOMEM;
    while (i < len) {
        utf8proc_int32_t c;
        utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
                                              (utf8proc_ssize_t)(len - i), &c);
        if (r <= 0) {
            free(cps);
            return RS_EINVAL;
        }
        cps[n++] = c;
        i += (size_t)r;
    }
    *out = cps;
    *n_out = n;
    return RS_OK;
}

/* --- vocabulary ----------------------------------------------------------- */

static uint64_t
hash_bytes(const char *p, size_t n)
{
    uint64_t h = FNV64_OFFSET;
    for (size_t i = 0; i < n; i++)
        h = fnv64_step(h, (unsigned char)p[i]);
    return h;
}

static struct entry *
lookup(const struct tok_vocab *v, const char *key, size_t len)
{
    size_t mask = v->n_slots - 1, i = hash_bytes(key, len) & mask;

    for (;; i = (i + 1) & mask) {
        struct entry *s = &v->slots[i];
        if (s->key == NULL || (s->len == len && memcmp(s->key, key, len) == 0))
            return s;
    }
}

int
tok_vocab_size(const struct tok_vocab *v)
{
    return v->n_ids;
}

int
tok_id(const struct tok_vocab *v, const char *token)
{
    const struct entry *s = lookup(v, token, strlen(token));
    return s->key != NULL ? s->id : -1;
}

const char *
tok_token(const struct tok_vocab *v, int id)
{
    return id >= 0 && id < v->n_ids ? v->inv[id] : NULL;
}

struct tok_special
tok_specials(const struct tok_vocab *v)
{
    return v->sp;
}

void
tok_vocab_free(struct tok_vocab *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n_slots; i++)
        free(v->slots[i].key);
    free(v->slots);
    free(v->inv);
    free(v);
}

static int
read_file(const char *path, char **data, size_t *len, struct rs_error *e)
{
    FILE *fp = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (fp == NULL)
        return rs_error_set(e, RS_EIO, "%s: cannot open: %s", path, strerror(errno));
    for (;;) {
        size_t r;
        if (n + 65536 + 1 > cap) {
            char *p = realloc(buf, cap = (cap ? cap * 2 : 1 << 17));
            if (p == NULL) {
                free(buf);
                fclose(fp);
                return rs_error_set(e, RS_ENOMEM, "%s: out of memory", path);
            }
            buf = p;
        }
        r = fread(buf + n, 1, 65536, fp);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(fp)) {
        free(buf);
        fclose(fp);
        return rs_error_set(e, RS_EIO, "%s: read error", path);
    }
    fclose(fp);
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return RS_OK;
}

/* Insert key with bert4keras semantics: token_dict[key] = len(token_dict). */
static int
vocab_put(struct tok_vocab *v, const char *key, size_t len, int *order, size_t *n_order)
{
    struct entry *s = lookup(v, key, len);

    if (s->key != NULL) {
        s->id = (int)v->n_keys;
        return RS_OK;
    }
    s->key = malloc(len + 1);
    if (s->key == NULL)
        return RS_ENOMEM;
    memcpy(s->key, key, len);
    s->key[len] = '\0';
    s->len = len;
    s->id = (int)v->n_keys++;
    order[(*n_order)++] = (int)(s - v->slots);
    return RS_OK;
}

int
tok_vocab_load(struct tok_vocab **out, const char *path, struct rs_error *e)
{
    struct tok_vocab *v = NULL;
    char *data = NULL;
    int32_t *cps = NULL;
    int *order = NULL;
    size_t len = 0, n_cps, n_lines = 1, n_order = 0;
    int rc;

    *out = NULL;
    if ((rc = read_file(path, &data, &len, e)) != RS_OK)
        return rc;
    if (utf8_decode(data, len, &cps, &n_cps) != RS_OK) {
        rc = rs_error_set(e, RS_EFORMAT, "%s: not valid UTF-8", path);
        goto fail;
    }
    for (size_t i = 0; i < len; i++)
        n_lines += data[i] == '\n' || data[i] == '\r';
    v = calloc(1, sizeof(*v));
    order = malloc(n_lines * sizeof(*order));
    if (v == NULL || order == NULL)
        goto oom;
    for (v->n_slots = 64; v->n_slots < 2 * n_lines; v->n_slots *= 2)
        ;
    v->slots = calloc(v->n_slots, sizeof(*v->slots));
    if (v->slots == NULL)
        goto oom;

    /* Lines end at \n, \r\n or \r (Python's universal newlines).  Work on
     * code points for whitespace, and on bytes for the token itself. */
    {
        size_t ci = 0, bi = 0;
        while (ci < n_cps) {
            size_t tok_b = 0, tok_len = 0, b = bi;
            int32_t c;
            int have = 0;
            /* skip leading Python whitespace other than line breaks */
            while (ci < n_cps && (c = cps[ci]) != '\n' && c != '\r') {
                size_t w = (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t[4]){ 0 });
                if (!is_py_space(c)) {
                    if (!have) {
                        have = 1;
                        tok_b = b;
                    }
                    tok_len = b + w - tok_b;
                } else if (have) {
                    /* first word ended: skip to the line end */
                    while (ci < n_cps && cps[ci] != '\n' && cps[ci] != '\r') {
                        b += (size_t)utf8proc_encode_char(cps[ci], (utf8proc_uint8_t[4]){ 0 });
                        ci++;
                    }
                    break;
                }
                b += w;
                ci++;
            }
            if (vocab_put(v, data + tok_b, have ? tok_len : 0, order, &n_order) != RS_OK)
                goto oom;
            if (ci < n_cps) {  /* consume the line break */
                if (cps[ci] == '\r' && ci + 1 < n_cps && cps[ci + 1] == '\n') {
                    ci++;
                    b++;
                }
                ci++;
                b++;
            }
            bi = b;
        }
    }

    v->n_ids = (int)v->n_keys;
    v->inv = calloc((size_t)v->n_ids + 1, sizeof(*v->inv));
    if (v->inv == NULL)
        goto oom;
    for (size_t i = 0; i < n_order; i++) {
        struct entry *s = &v->slots[order[i]];
        size_t n = 0;
        v->inv[s->id] = s->key;
        for (size_t k = 0; k < s->len; k++)
            n += ((unsigned char)s->key[k] & 0xC0) != 0x80;
        if ((int)n > v->max_token_cps)
            v->max_token_cps = (int)n;
    }
    {
        static const char *const names[] = { "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]" };
        int *ids[] = { &v->sp.pad, &v->sp.unk, &v->sp.cls, &v->sp.sep, &v->sp.mask };
        for (int i = 0; i < 5; i++) {
            *ids[i] = tok_id(v, names[i]);
            if (*ids[i] < 0) {
                rc = rs_error_set(e, RS_EFORMAT, "%s: the vocabulary has no %s token",
                                  path, names[i]);
                goto fail;
            }
        }
    }
    free(order);
    free(cps);
    free(data);
    *out = v;
    return RS_OK;
oom:
    rc = rs_error_set(e, RS_ENOMEM, "%s: out of memory", path);
fail:
    tok_vocab_free(v);
    free(order);
    free(cps);
    free(data);
    return rc;
}

/* --- encoding ------------------------------------------------------------- */

struct strbuf {
    char *p;
    size_t len, cap;
};

static int
sb_reserve(struct strbuf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + extra + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL)
            return RS_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    return RS_OK;
}

static int
sb_add(struct strbuf *b, const char *s, size_t n)
{
    if (sb_reserve(b, n) != RS_OK)
        return RS_ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return RS_OK;
}

static int
sb_add_cp(struct strbuf *b, int32_t c)
{
    if (sb_reserve(b, 4) != RS_OK)
        return RS_ENOMEM;
    b->len += (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)b->p + b->len);
    b->p[b->len] = '\0';
    return RS_OK;
}

/* Append a piece.  Pieces are stored as offsets into out->text and turned
 * into pointers at the end, because the text buffer moves as it grows. */
static int
add_piece(struct tok_output *o, const char *s, size_t n, int id)
{
    struct strbuf t = { o->text, o->text_len, o->text_cap };
    int rc;

    if (o->n == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        int32_t *ids = realloc(o->ids, (size_t)cap * sizeof(*ids));
        if (ids == NULL)
            return RS_ENOMEM;
        o->ids = ids;
        char **pieces = realloc(o->pieces, (size_t)cap * sizeof(*pieces));
        if (pieces == NULL)
            return RS_ENOMEM;
        o->pieces = pieces;
        size_t *offs = realloc(o->offsets, (size_t)cap * sizeof(*offs));
        if (offs == NULL)
            return RS_ENOMEM;
        o->offsets = offs;
        o->cap = cap;
    }
    o->offsets[o->n] = o->text_len;
    o->ids[o->n++] = id;
    rc = sb_add(&t, s, n);
    if (rc == RS_OK)
        rc = sb_add(&t, "", 1);
    o->text = t.p;
    o->text_len = t.len;
    o->text_cap = t.cap;
    return rc;
}

/* WordPiece one word (code points w[0..n)), appending its pieces. */
static int
wordpiece(const struct tok_vocab *v, const int32_t *w, size_t n, struct tok_output *out,
          struct strbuf *word, size_t *byte_at, struct strbuf *sub)
{
    size_t start = 0, text_mark = out->text_len;
    int mark = out->n;

    word->len = 0;
    for (size_t i = 0; i < n; i++) {
        byte_at[i] = word->len;
        if (sb_add_cp(word, w[i]) != RS_OK)
            return RS_ENOMEM;
    }
    byte_at[n] = word->len;
    if (n > WORD_MAXLEN)
        goto whole_word;
    while (start < n) {
        size_t end = n;
        const struct entry *hit = NULL;
        if (end - start > (size_t)v->max_token_cps)
            end = start + (size_t)v->max_token_cps;
        for (; end > start; end--) {
            sub->len = 0;
            if (start > 0 && sb_add(sub, "##", 2) != RS_OK)
                return RS_ENOMEM;
            if (sb_add(sub, word->p + byte_at[start], byte_at[end] - byte_at[start]) != RS_OK)
                return RS_ENOMEM;
            hit = lookup(v, sub->p, sub->len);
            if (hit->key != NULL)
                break;
        }
        if (end == start)
            goto whole_word;
        if (add_piece(out, hit->key, hit->len, hit->id) != RS_OK)
            return RS_ENOMEM;
        start = end;
    }
    return RS_OK;
whole_word:
    /* bert4keras returns [word]; its id is the word's own if it is in the
     * vocabulary (it never is here) or [UNK]. */
    out->n = mark;
    out->text_len = text_mark;
    {
        const struct entry *s = lookup(v, word->p, word->len);
        return add_piece(out, word->p, word->len, s->key ? s->id : v->sp.unk);
    }
}

void
tok_output_free(struct tok_output *out)
{
    free(out->ids);
    free(out->pieces);
    free(out->offsets);
    free(out->text);
    memset(out, 0, sizeof(*out));
}

int
tok_encode(const struct tok_vocab *v, const char *text, size_t len, int maxlen,
           struct tok_output *out, struct rs_error *e)
{
    int32_t *cps = NULL, *nfd = NULL;
    size_t n_cps, *byte_at = NULL;
    struct strbuf lower = { 0 }, word = { 0 }, sub = { 0 };
    utf8proc_ssize_t n_nfd;
    int rc;

    out->n = 0;
    out->truncated = 0;
    out->text_len = 0;
    if (maxlen > 0 && maxlen < 2)
        return rs_error_set(e, RS_EINVAL, "max length %d is too small (at least 2)", maxlen);
    rc = utf8_decode(text, len, &cps, &n_cps);
    if (rc != RS_OK)
        return rs_error_set(e, rc, rc == RS_EINVAL ? "text is not valid UTF-8"
                                                   : "out of memory");

    /* 1. lowercase, NFD, drop Mn (below, while splitting) */
    for (size_t i = 0; i < n_cps; i++)
        if (sb_add_cp(&lower, utf8proc_tolower(cps[i])) != RS_OK)
            goto oom;
    n_nfd = utf8proc_decompose((const utf8proc_uint8_t *)(lower.p ? lower.p : ""),
                               (utf8proc_ssize_t)lower.len, NULL, 0,
                               UTF8PROC_DECOMPOSE | UTF8PROC_STABLE);
    if (n_nfd < 0)
        goto oom;
    nfd = malloc(((size_t)n_nfd + 1) * sizeof(*nfd));
    byte_at = malloc(((size_t)n_nfd + 2) * sizeof(*byte_at));
    if (nfd == NULL || byte_at == NULL)
        goto oom;
    if (n_nfd > 0 && utf8proc_decompose((const utf8proc_uint8_t *)lower.p,
                                        (utf8proc_ssize_t)lower.len, nfd, n_nfd,
                                        UTF8PROC_DECOMPOSE | UTF8PROC_STABLE) != n_nfd)
        goto oom;

    if (add_piece(out, "[CLS]", 5, v->sp.cls) != RS_OK)
        goto oom;

    /* 2-4. split into words and WordPiece each; the word is gathered in
     * cps, which is large enough once grown to n_nfd */
    if ((size_t)n_nfd > n_cps) {
        int32_t *w = realloc(cps, (size_t)n_nfd * sizeof(*w));
        if (w == NULL)
            goto oom;
        cps = w;
    }
    {
        size_t wlen = 0;
        for (utf8proc_ssize_t i = 0; i <= n_nfd; i++) {
            int32_t c = i < n_nfd ? nfd[i] : ' ';
            int split = 0, single = 0;
            if (utf8proc_category(c) == UTF8PROC_CATEGORY_MN)
                continue;
            if (is_punct(c) || is_cjk(c))
                split = single = 1;
            else if (is_space(c))
                split = 1;
            else if (is_dropped(c))
                continue;
            else if (is_py_space(c))  /* Zl, Zp: str.split() separators */
                split = 1;
            if (!split) {
                cps[wlen++] = c;
                continue;
            }
            if (wlen > 0 && wordpiece(v, cps, wlen, out, &word, byte_at, &sub) != RS_OK)
                goto oom;
            wlen = 0;
            if (single && wordpiece(v, &c, 1, out, &word, byte_at, &sub) != RS_OK)
                goto oom;
        }
    }
    if (add_piece(out, "[SEP]", 5, v->sp.sep) != RS_OK)
        goto oom;

    /* truncate: keep [CLS], the first maxlen-2 pieces, [SEP] */
    if (maxlen > 0 && out->n > maxlen) {
        out->truncated = out->n - maxlen;
        out->ids[maxlen - 1] = out->ids[out->n - 1];
        out->offsets[maxlen - 1] = out->offsets[out->n - 1];
        out->n = maxlen;
    }
    for (int i = 0; i < out->n; i++)
        out->pieces[i] = out->text + out->offsets[i];
    rc = RS_OK;
    goto done;
oom:
    rc = rs_error_set(e, RS_ENOMEM, "out of memory");
    out->n = 0;
done:
    free(cps);
    free(nfd);
    free(byte_at);
    free(lower.p);
    free(word.p);
    free(sub.p);
    return rc;
}

/* --- decoding ------------------------------------------------------------- */

/* bert4keras _cjk_punctuation() plus "+-/={(<[": no space is kept after
 * these characters when decoding. */
static int
no_space_after(int32_t c)
{
    static const int32_t set[] = {
        0xff02, 0xff03, 0xff04, 0xff05, 0xff06, 0xff07, 0xff08, 0xff09, 0xff0a, 0xff0b,
        0xff0c, 0xff0d, 0xff0f, 0xff1a, 0xff1b, 0xff1c, 0xff1d, 0xff1e, 0xff20, 0xff3b,
        0xff3c, 0xff3d, 0xff3e, 0xff3f, 0xff40, 0xff5b, 0xff5c, 0xff5d, 0xff5e, 0xff5f,
        0xff60, 0xff62, 0xff63, 0xff64, 0x3000, 0x3001, 0x3003, 0x3008, 0x3009, 0x300a,
        0x300b, 0x300c, 0x300d, 0x300e, 0x300f, 0x3010, 0x3011, 0x3014, 0x3015, 0x3016,
        0x3017, 0x3018, 0x3019, 0x301a, 0x301b, 0x301c, 0x301d, 0x301e, 0x301f, 0x3030,
        0x303e, 0x303f, 0x2013, 0x2014, 0x2018, 0x2019, 0x201b, 0x201c, 0x201d, 0x201e,
        0x201f, 0x2026, 0x2027, 0xfe4f, 0xfe51, 0xfe54, 0x00b7, 0xff01, 0xff1f, 0xff61,
        0x3002, '+', '-', '/', '=', '{', '(', '<', '[',
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        if (set[i] == c)
            return 1;
    return 0;
}

static int
is_digit(int32_t c)
{
    return utf8proc_category(c) == UTF8PROC_CATEGORY_ND;
}

/* Does t[i..] start with "' X " for X in re|m|s|t|ve|d|ll?  Returns the
 * length of X, or 0. */
static size_t
contraction_at(const int32_t *t, size_t n, size_t i)
{
    static const char *const words[] = { "re", "m", "s", "t", "ve", "d", "ll" };

    if (i + 3 >= n || t[i] != '\'' || t[i + 1] != ' ')
        return 0;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t k = strlen(words[w]), j;
        if (i + 2 + k >= n)
            continue;
        for (j = 0; j < k && t[i + 2 + j] == words[w][j]; j++)
            ;
        if (j == k && t[i + 2 + k] == ' ')
            return k;
    }
    return 0;
}

char *
tok_decode(const struct tok_vocab *v, const int32_t *ids, int n)
{
    int32_t *t = NULL, *u = NULL, *tok = NULL;
    size_t len = 0, cap = 0, m, start, end;
    struct strbuf out = { 0 };
    int kept = 0;

    /* join the tokens */
    for (int i = 0; i < n; i++) {
        const char *s = tok_token(v, ids[i]);
        size_t slen, ntok;
        if (s == NULL)
            continue;
        slen = strlen(s);
        if (slen > 0 && s[0] == '[' && s[slen - 1] == ']')
            continue;
        free(tok);
        tok = NULL;
        if (utf8_decode(s, slen, &tok, &ntok) != RS_OK)
            goto fail;
        if (len + ntok + 3 > cap) {
            int32_t *p = realloc(t, (cap = 2 * (len + ntok + 3)) * sizeof(*t));
            if (p == NULL)
                goto fail;
            t = p;
        }
        if (ntok >= 2 && tok[0] == '#' && tok[1] == '#') {
            memcpy(t + len, tok + 2, (ntok - 2) * sizeof(*t));
            len += ntok - 2;
        } else if (ntok == 1 && is_cjk(tok[0])) {
            t[len++] = tok[0];
        } else if (ntok == 1 && is_punct(tok[0])) {
            t[len++] = tok[0];
            t[len++] = ' ';
        } else if (kept > 0 && len > 0 && is_cjk(t[len - 1])) {
            memcpy(t + len, tok, ntok * sizeof(*t));
            len += ntok;
        } else {
            t[len++] = ' ';
            memcpy(t + len, tok, ntok * sizeof(*t));
            len += ntok;
        }
        kept++;
    }
    u = malloc((len + 1) * sizeof(*u));
    if (u == NULL && len > 0)
        goto fail;

    /* re.sub(' +', ' ') */
    m = 0;
    for (size_t i = 0; i < len; i++)
        if (!(t[i] == ' ' && m > 0 && u[m - 1] == ' '))
            u[m++] = t[i];
    /* re.sub("' (re|m|s|t|ve|d|ll) ", "'\\1 ") */
    len = 0;
    for (size_t i = 0; i < m;) {
        size_t k = contraction_at(u, m, i);
        if (k > 0) {
            t[len++] = '\'';
            for (size_t j = 0; j < k; j++)
                t[len++] = u[i + 2 + j];
            t[len++] = ' ';
            i += k + 3;
        } else {
            t[len++] = u[i++];
        }
    }
    /* re.sub('(P) ', '\\1') for the punctuation above */
    m = 0;
    for (size_t i = 0; i < len;) {
        if (i + 1 < len && t[i + 1] == ' ' && no_space_after(t[i])) {
            u[m++] = t[i];
            i += 2;
        } else {
            u[m++] = t[i++];
        }
    }
    /* re.sub('(\\d\\.) (\\d)', '\\1\\2') */
    len = 0;
    for (size_t i = 0; i < m;) {
        if (i + 3 < m && is_digit(u[i]) && u[i + 1] == '.' && u[i + 2] == ' ' &&
            is_digit(u[i + 3])) {
            t[len++] = u[i];
            t[len++] = '.';
            t[len++] = u[i + 3];
            i += 4;
        } else {
            t[len++] = u[i++];
        }
    }
    /* strip() */
    for (start = 0; start < len && is_py_space(t[start]); start++)
        ;
    for (end = len; end > start && is_py_space(t[end - 1]); end--)
        ;
    if (sb_add(&out, "", 0) != RS_OK)
        goto fail;
    for (size_t i = start; i < end; i++)
        if (sb_add_cp(&out, t[i]) != RS_OK)
            goto fail;
    free(t);
    free(u);
    free(tok);
    return out.p;
fail:
    free(t);
    free(u);
    free(tok);
    free(out.p);
    return NULL;
}
