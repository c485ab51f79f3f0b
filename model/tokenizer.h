/*
 * tokenizer.h: the bert4keras 0.10.6 tokenizer (do_lower_case=True).
 *
 *     struct tok_vocab *v;
 *     if (tok_vocab_load(&v, "model/vocab.txt", &err) != RS_OK) ...
 *     struct tok_output out = {0};
 *     tok_encode(v, text, strlen(text), 64, &out, &err);   // [CLS] ... [SEP]
 *     ... out.ids[0..out.n) ...
 *     tok_output_free(&out);
 *     tok_vocab_free(v);
 *
 * The rules, in order: full lowercase, NFD, removal of Mn marks; spaces
 * around every punctuation and CJK character; whitespace (incl. Zs) becomes
 * a separator; NUL, U+FFFD, Cc and Cf characters are dropped; then greedy
 * longest-match WordPiece with "##" continuations, where a word with no
 * complete split (or longer than 200 characters) becomes one [UNK].
 * Truncation to maxlen keeps [CLS], the first maxlen-2 pieces and [SEP].
 * Unicode tables come from utf8proc.  Input must be valid UTF-8.
 *
 * A vocabulary is immutable after loading and may be shared by threads.
 */
#ifndef ROSIM_TOKENIZER_H
#define ROSIM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct tok_vocab;

/* Load vocab.txt with bert4keras's load_vocab rules: a line's token is its
 * first whitespace-separated word (or "" for a blank line), ids are given
 * in order of first appearance.  Returns RS_OK, RS_EIO or RS_EFORMAT
 * (invalid UTF-8, or [PAD]/[UNK]/[CLS]/[SEP]/[MASK] missing). */
int tok_vocab_load(struct tok_vocab **out, const char *path, struct rs_error *e);
void tok_vocab_free(struct tok_vocab *v);

int tok_vocab_size(const struct tok_vocab *v);
/* Id of a token, or -1. */
int tok_id(const struct tok_vocab *v, const char *token);
/* Token of an id (borrowed, valid while v lives), or NULL. */
const char *tok_token(const struct tok_vocab *v, int id);

/* Ids of the special tokens. */
struct tok_special { int pad, unk, cls, sep, mask; };
struct tok_special tok_specials(const struct tok_vocab *v);

/* The result of tok_encode: n pieces with their ids.  pieces[i] is the
 * piece text (a vocabulary token, or the whole unknown word for [UNK]). */
struct tok_output {
    int n;
    int truncated;       /* pieces maxlen cut away (0: none) */
    int32_t *ids;        /* [n] */
    char **pieces;       /* [n], NUL-terminated, pointing into text */
    /* storage, owned by the struct and reused by the next tok_encode */
    int cap;
    size_t *offsets;
    char *text;
    size_t text_len, text_cap;
};

/* Tokenize text[0..len) into out, which must be zeroed before first use and
 * released with tok_output_free (it is reused across calls).  maxlen <= 0 means no truncation; otherwise maxlen >= 2.
 * Returns RS_OK, RS_EINVAL (invalid UTF-8, bad maxlen) or RS_ENOMEM. */
int tok_encode(const struct tok_vocab *v, const char *text, size_t len, int maxlen,
               struct tok_output *out, struct rs_error *e);
void tok_output_free(struct tok_output *out);

/* bert4keras Tokenizer.decode: drop [..] tokens, glue "##" pieces and CJK
 * characters, space other words, tidy spaces around punctuation.  Returns a
 * new NUL-terminated string (caller frees) or NULL when out of memory. */
char *tok_decode(const struct tok_vocab *v, const int32_t *ids, int n);

#endif
