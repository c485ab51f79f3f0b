#!/bin/sh
# http.sh: rosimd under load from wrk on loopback, with the random
# base-size model in precision PRECISION (default fp32): /healthz req/s, and
# /v1/embed with one short sentence per request at 1 and 32 concurrent
# connections (batching merges the latter), against the rate of
# `rosim embed --batch 32` on the same sentence in the same precision.
# mean_batch: sentences per encoder batch during that run (from /metrics).
# ROSIMD_OPTS: more daemon options, e.g. "-o model.batch_wait_us=0".
#   usage: [PRECISION=bf16] [ROSIMD_OPTS=...] bench/http.sh BUILD_DIR
set -eu
build=${1:-build}
model=build/bench-model
precision=${PRECISION:-fp32}
port=18600
data=$(mktemp -d)
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
sentence='今天天气怎么样，我们出去走走吧'
$build/rosimd --listen 127.0.0.1:$port --model $model --data $data \
    -o model.threads="$(nproc)" -o model.precision=$precision -o server.log_level=warn \
    ${ROSIMD_OPTS:-} 2>$data/log &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf $data' EXIT
until curl -fs http://127.0.0.1:$port/readyz >/dev/null 2>&1; do sleep 0.2; done
lua=$(dirname "$0")/embed.lua
# "SUM COUNT" of the batch-size histogram
batches() {
    curl -fs http://127.0.0.1:$port/metrics |
        awk '/^rosim_batch_size_sum /{s=$2} /^rosim_batch_size_count /{c=$2} END{print s, c}'
}
echo "healthz, 32 connections:"
wrk -t2 -c32 -d5s http://127.0.0.1:$port/healthz | grep -E "Requests/sec|Non-2xx" || true
for c in 1 32; do
    printf '{"precision":"%s","embed_connections":%d,"result":' $precision $c
    before=$(batches)
    wrk -t$([ $c -gt 1 ] && echo 2 || echo 1) -c$c -d15s -s $lua http://127.0.0.1:$port/v1/embed \
        | tail -n 1 | tr -d '\n' | tee $data/wrk$c
    echo "$before $(batches)" |
        awk '{printf ",\"mean_batch\":%.1f}\n", ($3 - $1) / ($4 > $2 ? $4 - $2 : 1)}' |
        tee $data/batch$c
done
kill $pid
wait $pid 2>/dev/null || true
# the CLI on the same sentence: the time of 4096 copies less that of one
echo "$sentence" > $data/one
for i in $(seq 4096); do echo "$sentence"; done > $data/many
t0=$(date +%s.%N)
$build/rosim embed --model $model --batch 32 --precision $precision < $data/one > /dev/null
t1=$(date +%s.%N)
$build/rosim embed --model $model --batch 32 --precision $precision < $data/many > /dev/null
t2=$(date +%s.%N)
/usr/bin/python3 -c 'import json, sys
load, total, http = float(sys.argv[1]), float(sys.argv[2]), json.load(open(sys.argv[3]))
cli = 4095 / (total - load)
print(json.dumps({"precision": sys.argv[4], "cli_batch32_sentences_per_s": round(cli, 1),
                  "http32_req_per_s": http["req_per_s"],
                  "http32_share_of_cli": round(http["req_per_s"] / cli, 3),
                  "http32_mean_batch": float(sys.argv[5])}))' \
    "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" $data/wrk32 $precision \
    "$(sed 's/.*://; s/}//' $data/batch32)"
