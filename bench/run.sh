#!/bin/sh
# run.sh: the benchmarks, on a random base-size RoFormer-Sim (12 layers,
# hidden 768, vocabulary 12000; made by make_random_model.py, never
# committed) and real Chinese sentences from Debian's fortunes-zh:
#   - the machine's limits: OpenBLAS sgemm and oneDNN f32/bf16/int8 matmul at
#     the encoder's shapes, with the kernel each runs;
#   - the encoder in each precision of PRECISIONS (default fp32 bf16 int8):
#     512 sentences at batch 1 and 32 against its limit, resident memory,
#     cosine to the fp32 vectors, and a summary of the speed-ups;
#   - bulk import of those sentences into a collection (documents/s);
#   - generation: gen_synonyms, n 100, k 20, 32 new tokens, 8 sentences, in
#     each of GEN_PRECISIONS (default bf16 fp32);
#   - search: 100k vectors, clustered and uniform: Flat, HNSW32 and IVF at two
#     efforts each, and FAISS's flat index called directly (QPS, recall@10).
# OpenBLAS picks its own kernel: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are
# unset here, as nowhere else.
#   usage: bench/run.sh BUILD_DIR [encoder|import|generate|search]...
set -eu
build=${1:-build}
shift || true
what=${*:-encoder import generate search}
sh scripts/setup.sh --bench
model=build/bench-model
[ -f $model/model.safetensors ] || /usr/bin/python3 bench/make_random_model.py $model
sentences=build/bench-sentences.txt
if [ ! -f $sentences ]; then
    cat /usr/share/games/fortunes/chinese /usr/share/games/fortunes/tang300 \
        /usr/share/games/fortunes/song100 2>/dev/null \
        | sed 's/\x1b\[[0-9;]*m//g; s/^[[:space:]]*//; s/[[:space:]]*$//' \
        | grep -v '^%$' | grep -v '^$' | grep -P '[\x{4e00}-\x{9fff}]' | head -n 512 > $sentences
fi
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
threads=$(nproc)
precisions=${PRECISIONS:-fp32 bf16 int8}
results=$(mktemp)
trap 'rm -f $results' EXIT
for w in $what; do
    case $w in
    encoder)
        for p in $precisions; do
            $build/rosim bench --model $model --input $sentences --count 512 \
                --threads $threads --precision $p | tee -a $results
        done
        /usr/bin/python3 bench/summary.py < $results ;;
    import)
        data=$(mktemp -d)
        /usr/bin/python3 -c 'import json, sys
for i, l in enumerate(sys.stdin):
    print(json.dumps({"id": "s%d" % i, "text": l.rstrip("\n")}, ensure_ascii=False))' \
            < $sentences > $data/docs.jsonl
        start=$(date +%s.%N)
        $build/rosim import --model $model --data $data/db --collection bench \
            --threads $threads < $data/docs.jsonl
        end=$(date +%s.%N)
        echo "{\"import\":{\"documents\":$(wc -l < $data/docs.jsonl),\"seconds\":$(echo "$end - $start" | bc)}}"
        rm -rf $data ;;
    generate)
        for p in ${GEN_PRECISIONS:-bf16 fp32}; do
            echo "{\"generate_precision\":\"$p\"}"
            $build/rosim bench --generate --model $model --input $sentences --count 8 \
                --threads $threads --precision $p
        done ;;
    search)
        $build/rosim bench --search --model $model --count 100000 --threads $threads ;;
    esac
done
