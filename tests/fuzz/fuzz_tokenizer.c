/*
 * fuzz_tokenizer.c: tok_encode and tok_decode on arbitrary bytes with the
 * released vocabulary.  The first byte picks maxlen (0: none).  Oracles:
 * the text with its NUL bytes removed tokenizes the same (bert4keras drops
 * U+0000), and the truncated result is [CLS], the first maxlen-2 pieces of
 * the untruncated one, [SEP].
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../model/tokenizer.h"

static struct tok_vocab *vocab;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tok_output out = { 0 };
    struct rs_error e;
    int maxlen;

    if (vocab == NULL && tok_vocab_load(&vocab, "tests/fixtures/roformer-sim-char/vocab.txt", &e))
        abort();
    if (size == 0)
        return 0;
    maxlen = data[0] < 2 ? 0 : data[0];
    if (tok_encode(vocab, (const char *)data + 1, size - 1, maxlen, &out, &e) == RS_OK) {
        char *text = tok_decode(vocab, out.ids, out.n), *plain = malloc(size);
        struct tok_output ref = { 0 };
        size_t n = 0;
        free(text);
        if (plain == NULL)
            abort();
        for (size_t i = 1; i < size; i++)
            if (data[i] != 0)
                plain[n++] = (char)data[i];
        if (tok_encode(vocab, plain, n, 0, &ref, &e) != RS_OK)
            abort();
        /* out = [CLS] + ref[1 .. out.n - 1) + [SEP] */
        if (out.n > ref.n || out.n < 2 || out.ids[0] != ref.ids[0] ||
            out.ids[out.n - 1] != ref.ids[ref.n - 1] ||
            memcmp(out.ids, ref.ids, (size_t)(out.n - 1) * sizeof(int32_t)) != 0 ||
            out.truncated != ref.n - out.n)
            abort();
        tok_output_free(&ref);
        free(plain);
    }
    /* the bytes as ids, some out of range */
    {
        int32_t ids[64];
        int n = 0;
        for (size_t i = 0; i + 1 < size && n < 64; i += 2)
            ids[n++] = (int32_t)(data[i] | data[i + 1] << 8) - 100;
        free(tok_decode(vocab, ids, n));
    }
    tok_output_free(&out);
    return 0;
}
