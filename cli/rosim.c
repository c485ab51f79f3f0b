/*
 * rosim.c: the command-line tool: run the model without a server.
 *
 *     rosim tokenize --model DIR [--max-length N]
 *     rosim embed    --model DIR [--max-length N] [--batch N] [--raw] [--pooler P]
 *     rosim generate --model DIR [--n 20] [--k 5] [--top-p 0.95] [--top-k 0]
 *                    [--temperature 1] [--max-length 64] [--seed S] [--beam W]
 *     rosim import   --model DIR --data DIR --collection NAME [--index F] < docs.jsonl
 *     rosim import   --model DIR --dsn DSN [--data DIR] --collection NAME ...
 *                    (collections on PostgreSQL; search takes --dsn too)
 *     rosim search   --model DIR --data DIR --collection NAME [--k 10] [--min-score S]
 *
 * Reads one text per line on stdin (a trailing \r is dropped) and writes one
 * JSON value per line on stdout, UTF-8 without ASCII escaping.  Exit status
 * 0 on success; otherwise a one-line message on stderr and status 1 (bad
 * model or input) or 2 (bad arguments).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include "../model/embed.h"
#include "../model/generate.h"
#include "../model/roformer.h"
#include "../model/threadenv.h"
#include "bench.h"
#include "cli.h"

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: rosim tokenize --model DIR [--max-length N]\n"
            "       rosim embed    --model DIR [--max-length N] [--batch N] [--raw]\n"
            "                      [--pooler linear|tanh|cls|mean] [--threads N]\n"
            "       rosim generate --model DIR [--n 20] [--k 5] [--top-p 0.95] [--top-k 0]\n"
            "                      [--temperature 1] [--max-length 64] [--seed S] [--beam W]\n"
            "       rosim import   --model DIR --data DIR --collection NAME [--index F] < docs.jsonl\n"
            "       rosim import   --model DIR --dsn DSN [--data DIR] --collection NAME ...\n"
            "       rosim search   --model DIR --data DIR --collection NAME [--k 10] [--min-score S]\n"
            "       rosim bench    --model DIR [--input FILE] [--count N] [--threads N]\n"
            "                      [--generate | --search]\n"
            "Every command that runs the model takes --precision fp32|bf16|int8|auto\n"
            "(default fp32).  Reads one text per line on stdin, writes one JSON value per line.\n");
}

static int
parse_int(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno || n < lo || n > hi) {
        fprintf(stderr, "rosim: %s: '%s' is not a number from %d to %d\n", opt, v, lo, hi);
        return -1;
    }
    *out = (int)n;
    return 0;
}

double
cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int
emit(json_t *j)
{
    int rc = json_dumpf(j, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(j);
    if (rc != 0 || fputc('\n', stdout) == EOF)
        return -1;
    return 0;
}

ssize_t
read_line(char **line, size_t *cap)
{
    return read_line_from(stdin, line, cap);
}

ssize_t
read_line_from(FILE *f, char **line, size_t *cap)
{
    ssize_t n = getline(line, cap, f);

    if (n > 0 && (*line)[n - 1] == '\n')
        (*line)[--n] = '\0';
    if (n > 0 && (*line)[n - 1] == '\r')
        (*line)[--n] = '\0';
    return n;
}

static int
cmd_tokenize(const struct rf_model *m, const struct options *o)
{
    const struct tok_vocab *v = rf_model_vocab(m);
    struct tok_output out = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;

    while ((n = read_line(&line, &cap)) >= 0) {
        struct rs_error e;
        json_t *tokens, *ids;
        lineno++;
        if (tok_encode(v, line, (size_t)n, o->max_length, &out, &e) != RS_OK) {
            fprintf(stderr, "rosim: line %ld: %s\n", lineno, e.msg);
            rc = 1;
            break;
        }
        tokens = json_array();
        ids = json_array();
        for (int i = 0; i < out.n; i++) {
            json_array_append_new(tokens, json_string(out.pieces[i]));
            json_array_append_new(ids, json_integer(out.ids[i]));
        }
        if (emit(json_pack("{s:o,s:o}", "tokens", tokens, "ids", ids)) != 0) {
            fprintf(stderr, "rosim: cannot write output\n");
            rc = 1;
            break;
        }
    }
    free(line);
    tok_output_free(&out);
    return rc;
}

/* Embedding works on windows of lines, each embedded by the pipeline of
 * model/embed.h (batches are packed, so lengths need no sorting) and
 * written in input order.  lines[i] are the window's lines, first_line
 * the number of lines[0]. */
static int
embed_window(const struct rf_model *m, const struct emb_options *eo, struct emb_text *lines,
             int n, long first_line, float *vecs)
{
    const int H = rf_model_config(m)->d_model;
    struct emb_usage u;
    struct rs_error e;

    if (emb_texts(m, lines, n, eo, vecs, &u, &e) != RS_OK) {
        if (u.failed >= 0)
            fprintf(stderr, "rosim: line %ld: %s\n", first_line + u.failed, e.msg);
        else
            fprintf(stderr, "rosim: %s\n", e.msg);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        json_t *arr = json_array();
        for (int j = 0; j < H; j++)
            json_array_append_new(arr, json_real(vecs[(size_t)i * (size_t)H + (size_t)j]));
        if (emit(arr) != 0) {
            fprintf(stderr, "rosim: cannot write output\n");
            return -1;
        }
    }
    return 0;
}

static int
cmd_embed(const struct rf_model *m, const struct options *o)
{
    const int H = rf_model_config(m)->d_model, window = 16 * o->batch;
    struct emb_text *lines = calloc((size_t)window, sizeof(*lines));
    float *vecs = malloc((size_t)window * (size_t)H * sizeof(float));
    struct emb_options eo = emb_default_options();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0;
    int n = 0, rc = 0;

    eo.max_length = o->max_length;
    eo.pooler = (enum rf_pooler)o->pooler;
    eo.normalize = !o->raw;
    eo.batch = o->batch;
    eo.state = rf_state_new(m, o->batch, o->max_length);
    if (lines == NULL || vecs == NULL || eo.state == NULL) {
        fprintf(stderr, "rosim: out of memory\n");
        rc = 1;
        goto done;
    }
    while (rc == 0 && (len = read_line(&line, &cap)) >= 0) {
        lineno++;
        lines[n].s = malloc((size_t)len + 1);
        if (lines[n].s == NULL) {
            fprintf(stderr, "rosim: out of memory\n");
            rc = 1;
            break;
        }
        memcpy((char *)lines[n].s, line, (size_t)len + 1);
        lines[n].len = (size_t)len;
        if (++n == window) {
            rc = embed_window(m, &eo, lines, n, lineno - n + 1, vecs) ? 1 : 0;
            while (n > 0)
                free((char *)lines[--n].s);
        }
    }
    if (rc == 0 && n > 0)
        rc = embed_window(m, &eo, lines, n, lineno - n + 1, vecs) ? 1 : 0;
done:
    for (int i = 0; i < n; i++)
        free((char *)lines[i].s);
    free(lines);
    free(vecs);
    free(line);
    rf_state_free(eo.state);
    return rc;
}

static int
parse_float(const char *opt, const char *v, float *out)
{
    char *end;
    float f;

    errno = 0;
    f = strtof(v, &end);
    if (*v == '\0' || *end != '\0' || errno || !isfinite(f)) {
        fprintf(stderr, "rosim: %s: '%s' is not a number\n", opt, v);
        return -1;
    }
    *out = f;
    return 0;
}

static int
cmd_generate(const struct rf_model *m, const struct options *o)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;

    while (rc == 0 && (n = read_line(&line, &cap)) >= 0) {
        struct gen_paraphrases out = { 0 };
        struct gen_params p = o->gen;
        struct rs_error e;
        json_t *list;
        lineno++;
        if (!o->seeded && getrandom(&p.seed, sizeof(p.seed), 0) != sizeof(p.seed))
            p.seed = (uint64_t)time(NULL) ^ (uint64_t)lineno;
        if (gen_paraphrase(m, line, (size_t)n, &p, o->k, &out, &e) != RS_OK) {
            fprintf(stderr, "rosim: line %ld: %s\n", lineno, e.msg);
            rc = 1;
            break;
        }
        list = json_array();
        for (int i = 0; i < out.n; i++)
            json_array_append_new(list, json_pack("{s:s,s:f}", "text", out.items[i].text,
                                                  "score", (double)out.items[i].score));
        gen_paraphrases_free(&out);
        if (emit(json_pack("{s:s%,s:o}", "text", line, (size_t)n, "paraphrases", list)) != 0) {
            fprintf(stderr, "rosim: cannot write output\n");
            rc = 1;
        }
    }
    free(line);
    return rc;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "model", required_argument, NULL, 'm' },
        { "max-length", required_argument, NULL, 'L' },
        { "batch", required_argument, NULL, 'b' },
        { "raw", no_argument, NULL, 'r' },
        { "pooler", required_argument, NULL, 'p' },
        { "threads", required_argument, NULL, 't' },
        { "precision", required_argument, NULL, 'X' },
        { "input", required_argument, NULL, 'i' },
        { "count", required_argument, NULL, 'c' },
        { "n", required_argument, NULL, 'n' },
        { "k", required_argument, NULL, 'k' },
        { "top-p", required_argument, NULL, 'P' },
        { "top-k", required_argument, NULL, 'K' },
        { "temperature", required_argument, NULL, 'T' },
        { "seed", required_argument, NULL, 's' },
        { "beam", required_argument, NULL, 'B' },
        { "generate", no_argument, NULL, 'G' },
        { "search", no_argument, NULL, 'Q' },
        { "data", required_argument, NULL, 'D' },
        { "dsn", required_argument, NULL, 'N' },
        { "collection", required_argument, NULL, 'C' },
        { "index", required_argument, NULL, 'I' },
        { "min-score", required_argument, NULL, 'S' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct options o = { NULL, -1, 32, 0, RF_POOL_LINEAR, 0, gen_default_params(), -1, 0,
                         NULL, NULL, NULL, -2.0f, NULL };
    struct bench_options bo = { NULL, NULL, 512, 0, 0 };
    const char *cmd;
    struct rf_model *m;
    struct rs_error e;
    int opt, rc, precision = MM_FP32;
    char removed[128];

    /* before anything: the environment libgomp reads at load (threadenv.h) */
    if (threadenv_fix(removed, sizeof(removed))) {
        threadenv_reexec(argv);
        if (removed[0] != '\0') {
            fprintf(stderr, "rosim: cannot execute itself again without %s (%s); unset it: "
                    "OpenMP teams smaller than --threads make oneDNN compute wrong vectors\n",
                    removed, strerror(errno));
            return 1;
        }
    }
    if (threadenv_removed() != NULL && threadenv_removed()[0] != '\0')
        fprintf(stderr, "rosim: warning: ignoring %s from the environment: OpenMP teams "
                "smaller than --threads make oneDNN compute wrong vectors\n",
                threadenv_removed());
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    cmd = argv[1];
    if (strcmp(cmd, "tokenize") != 0 && strcmp(cmd, "embed") != 0 && strcmp(cmd, "bench") != 0 &&
        strcmp(cmd, "generate") != 0 && strcmp(cmd, "import") != 0 && strcmp(cmd, "search") != 0) {
        fprintf(stderr, "rosim: unknown command '%s' (tokenize, embed, generate, import, "
                "search, bench)\n", cmd);
        return 2;
    }
    optind = 2;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'm': o.model = optarg; break;
        case 'L': if (parse_int("--max-length", optarg, 1, 100000, &o.max_length)) return 2; break;
        case 'b': if (parse_int("--batch", optarg, 1, 1024, &o.batch)) return 2; break;
        case 'r': o.raw = 1; break;
        case 'p':
            if ((o.pooler = rf_pooler_parse(optarg)) < 0) {
                fprintf(stderr, "rosim: --pooler: '%s' is not linear, tanh, cls or mean\n", optarg);
                return 2;
            }
            break;
        case 't': if (parse_int("--threads", optarg, 1, 256, &o.threads)) return 2; break;
        case 'X':
            if ((precision = mm_precision_parse(optarg)) < 0) {
                fprintf(stderr, "rosim: --precision: '%s' is not fp32, bf16, int8 or auto\n",
                        optarg);
                return 2;
            }
            break;
        case 'i': bo.input = optarg; break;
        case 'c': if (parse_int("--count", optarg, 1, 1000000, &bo.count)) return 2; break;
        case 'G': bo.generate = 1; break;
        case 'Q': bo.search = 1; break;
        case 'D': o.data = optarg; break;
        case 'N': o.dsn = optarg; break;
        case 'C': o.collection = optarg; break;
        case 'I': o.index = optarg; break;
        case 'S': if (parse_float("--min-score", optarg, &o.min_score)) return 2; break;
        case 'n': if (parse_int("--n", optarg, 1, GEN_MAX_N, &o.gen.n)) return 2; break;
        case 'k': if (parse_int("--k", optarg, 1, GEN_MAX_N, &o.k)) return 2; break;
        case 'K': if (parse_int("--top-k", optarg, 0, 1000000, &o.gen.top_k)) return 2; break;
        case 'B': if (parse_int("--beam", optarg, 0, GEN_MAX_N, &o.gen.beam)) return 2; break;
        case 'P': if (parse_float("--top-p", optarg, &o.gen.top_p)) return 2; break;
        case 'T': if (parse_float("--temperature", optarg, &o.gen.temperature)) return 2; break;
        case 's': {
            char *end;
            errno = 0;
            o.gen.seed = strtoull(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || errno || *optarg == '-') {
                fprintf(stderr, "rosim: --seed: '%s' is not a whole number\n", optarg);
                return 2;
            }
            o.seeded = 1;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rosim: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (o.model == NULL) {
        fprintf(stderr, "rosim: --model DIR is required\n");
        return 2;
    }
    bo.model = o.model;
    if (strcmp(cmd, "generate") == 0) {
        struct rs_error ge;
        if (o.max_length > 0)
            o.gen.max_new = o.max_length;
        if (gen_check_params(&o.gen, &ge) != RS_OK) {
            fprintf(stderr, "rosim: %s\n", ge.msg);
            return 2;
        }
    } else if (o.max_length == 1) {
        fprintf(stderr, "rosim: --max-length: at least 2 tokens ([CLS] and [SEP])\n");
        return 2;
    }
    if (o.max_length < 0)
        o.max_length = strcmp(cmd, "tokenize") == 0 ? 0 : 64;
    if (o.k < 0)
        o.k = strcmp(cmd, "search") == 0 ? 10 : o.gen.beam > 0 ? 1 : 5;
    rf_set_threads(o.threads > 0 ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    if (rf_model_load_as(&m, o.model, (enum mm_precision)precision, &e) != RS_OK) {
        fprintf(stderr, "rosim: %s\n", e.msg);
        return 1;
    }
    if (strcmp(cmd, "tokenize") == 0)
        rc = cmd_tokenize(m, &o);
    else if (strcmp(cmd, "embed") == 0)
        rc = cmd_embed(m, &o);
    else if (strcmp(cmd, "generate") == 0)
        rc = cmd_generate(m, &o);
    else if (strcmp(cmd, "import") == 0)
        rc = cmd_import(m, &o);
    else if (strcmp(cmd, "search") == 0)
        rc = cmd_search(m, &o);
    else if (bo.generate)
        rc = bench_generate(m, &bo);
    else if (bo.search)
        rc = bench_search(m, &bo);
    else
        rc = bench_encoder(m, &bo);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "rosim: cannot write output\n");
        rc = 1;
    }
    rf_model_free(m);
    return rc;
}
