#!/bin/sh
# run.sh: the encoder benchmark on a random base-size model and 512 real
# Chinese sentences (Debian's fortunes-zh).  OpenBLAS picks its own kernel:
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset here, as nowhere else.
#   usage: bench/run.sh BUILD_DIR
set -eu
build=${1:-build}
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
$build/rosim bench --model $model --input $sentences --count 512 --threads "$(nproc)"
