#!/usr/bin/env bash
# Parity fixtures for the real CLIP architectures, with generated weights (nothing is downloaded).
#
#   tools/parity_large.sh OUT_DIR [ARCH...]        ARCH: ViT-B-16 (default), ViT-L-14-336, or "all"
#
# Writes OUT_DIR/<ARCH>/ in the layout of tests/fixtures/parity (model/, bank.safetensors, images/,
# expected.safetensors, reference_weights.safetensors, README.md). Point the Rust parity test at one:
#
#   LOUPE_PARITY_DIR=OUT_DIR/ViT-B-16 cargo test -p <crate> parity
#
# ViT-B-16 runs at 224 (14x14 grid, feature layers 3,6,9,12); ViT-L-14-336 at 518 (positional embedding
# resized 24x24 -> 37x37, feature layers 6,12,18,24), as DAPO. Both: 4 visual + 4 text deep prompts, adapters,
# a random bank of 10 groups x 5 context vectors, words hole,scratch,crack (+ novel "burr"), sigma 4 for the
# smoothed map (the peers' value), two procedural images.
# Sizes: ViT-B-16 about 1.2 GB on disk, ViT-L-14-336 about 3.5 GB. Needs the torch set (tools/requirements-torch.txt);
# PYTHON defaults to /opt/loupe-venv/bin/python. THREADS (default 2) sets torch's threads.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  sed -n '2,20p' "$0"; exit 2
fi
OUT=$1; shift
ARCHS=("$@")
[[ ${#ARCHS[@]} -eq 0 ]] && ARCHS=(ViT-B-16)
[[ ${ARCHS[0]} == all ]] && ARCHS=(ViT-B-16 ViT-L-14-336)
PYTHON=${PYTHON:-/opt/loupe-venv/bin/python}
THREADS=${THREADS:-2}
TOOLS=$(cd "$(dirname "$0")" && pwd)

for arch in "${ARCHS[@]}"; do
  case $arch in
    ViT-B-16) size=224 ;;
    ViT-L-14-336) size=518 ;;
    *) echo "unknown arch $arch" >&2; exit 2 ;;
  esac
  start=$(date +%s)
  PYTHONPATH=$TOOLS "$PYTHON" -m loupe_tools.make_fixtures --out "$OUT/$arch" --arch "$arch" --seed 0 \
    --input-size "$size" --visual-prompts 4 --text-deep-prompts 4 --groups 10 --n-ctx 5 \
    --words hole,scratch,crack --novel-word burr --sigma 4.0 --images gray_hole,rgb --threads "$THREADS"
  echo "$arch: $(( $(date +%s) - start )) s, $(du -sh "$OUT/$arch" | cut -f1)"
done
