#!/bin/sh
# download-model.sh: fetch a released RoFormer-Sim checkpoint (needs internet).
#
#   scripts/download-model.sh [NAME] [DEST] [--sha256 SUM]
#
# NAME is one of the four official releases (model-spec: ZhuiyiTechnology's
# roformer-sim README):
#   sim-char-ft-base    chinese_roformer-sim-char-ft_L-12_H-768_A-12  (default; fine-tuned for similarity)
#   sim-char-base       chinese_roformer-sim-char_L-12_H-768_A-12
#   sim-char-ft-small   chinese_roformer-sim-char-ft_L-6_H-384_A-6
#   sim-char-small      chinese_roformer-sim-char_L-6_H-384_A-6
# DEST defaults to models/roformer-sim, where conf/rosimd.conf looks.
#
# Integrity: the release publishes no checksums, so the script checks what
# can be checked: the zip's own CRC-32 of every member (unzip -t), then every
# tensor's CRC32C when rosim loads the checkpoint, and a SHA-256 you pass
# with --sha256 (it prints the archive's SHA-256 so you can pin it).
set -eu

name=sim-char-ft-base
dest=models/roformer-sim
want=""
while [ $# -gt 0 ]; do
    case $1 in
    --sha256) want=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) if [ "$name" = sim-char-ft-base ] && [ -z "${got_name:-}" ]; then
           name=$1; got_name=1
       else
           dest=$1
       fi
       shift ;;
    esac
done
case $name in
sim-char-ft-base)  zip=chinese_roformer-sim-char-ft_L-12_H-768_A-12 ;;
sim-char-base)     zip=chinese_roformer-sim-char_L-12_H-768_A-12 ;;
sim-char-ft-small) zip=chinese_roformer-sim-char-ft_L-6_H-384_A-6 ;;
sim-char-small)    zip=chinese_roformer-sim-char_L-6_H-384_A-6 ;;
*) echo "download-model: unknown model '$name'" >&2; exit 2 ;;
esac
url="https://open.zhuiyi.ai/releases/nlp/models/zhuiyi/$zip.zip"
if [ -e "$dest" ]; then
    echo "download-model: $dest exists; move it away first" >&2
    exit 1
fi
for tool in curl unzip sha256sum; do
    command -v $tool >/dev/null || { echo "download-model: needs $tool (apt-get install $tool)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "download-model: fetching $url" >&2
curl -fL --retry 3 -o "$tmp/model.zip" "$url"
sum=$(sha256sum "$tmp/model.zip" | cut -d' ' -f1)
echo "download-model: sha256 $sum" >&2
if [ -n "$want" ] && [ "$sum" != "$want" ]; then
    echo "download-model: checksum mismatch (expected $want)" >&2
    exit 1
fi
unzip -tq "$tmp/model.zip" >/dev/null
unzip -q "$tmp/model.zip" -d "$tmp/x"
src=$(dirname "$(find "$tmp/x" -name bert_config.json | head -n 1)")
[ -f "$src/vocab.txt" ] || { echo "download-model: no vocab.txt in the archive" >&2; exit 1; }
rosim=$(dirname "$0")/../build/rosim
if [ -x "$rosim" ]; then
    echo 我喜欢北京 | "$rosim" embed --model "$src" >/dev/null   # loads and CRC-checks every tensor
fi
mkdir -p "$(dirname "$dest")"
mv "$src" "$dest"
echo "download-model: installed in $dest" >&2
