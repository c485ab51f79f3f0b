#!/bin/sh
# http.sh: rosimd under load from wrk on loopback, with the random
# base-size model: /healthz req/s, and /v1/embed with one short sentence per
# request at 1 and 32 concurrent connections (batching merges the latter).
#   usage: bench/http.sh BUILD_DIR
set -eu
build=${1:-build}
model=build/bench-model
port=18600
data=$(mktemp -d)
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
$build/rosimd --listen 127.0.0.1:$port --model $model --data $data \
    -o model.threads="$(nproc)" -o server.log_level=warn 2>$data/log &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf $data' EXIT
until curl -fs http://127.0.0.1:$port/readyz >/dev/null 2>&1; do sleep 0.2; done
lua=$(dirname "$0")/embed.lua
echo "healthz, 32 connections:"
wrk -t2 -c32 -d5s http://127.0.0.1:$port/healthz | grep -E "Requests/sec|Non-2xx" || true
for c in 1 32; do
    printf '{"embed_connections":%d,"result":' $c
    wrk -t$([ $c -gt 1 ] && echo 2 || echo 1) -c$c -d15s -s $lua http://127.0.0.1:$port/v1/embed | tail -n 1
    printf '}\n'
done
