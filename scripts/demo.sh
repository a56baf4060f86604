#!/usr/bin/env bash
# The README demo: build pathvlm (the program alone), draw synthetic H&E-like tiles of 8 tissue classes with varied
# captions, pack them into tiles shards, train a tiny CLIP on 2 CPU ranks (a few minutes: the loss falls), and print
# the zero-shot accuracy on held-out tiles (chance: 1/8 = 0.125).
#
#   scripts/demo.sh [key=value ...]        e.g. scripts/demo.sh train.steps=150
#
# The CLIP tokenizer (bpe_simple_vocab_16e6.txt.gz) comes from $PATHVLM_CLIP_VOCAB, else
# ../shared/data/tokenizers/, else it is downloaded from open_clip into demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build/release pathvlm
BIN=build/release/pathvlm
DEMO=demo/clip
mkdir -p "$DEMO"

VOCAB=${PATHVLM_CLIP_VOCAB:-../shared/data/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz}
if [ ! -f "$VOCAB" ]; then
  VOCAB=$DEMO/bpe_simple_vocab_16e6.txt.gz
  if [ ! -f "$VOCAB" ]; then
    echo "demo: downloading the CLIP BPE vocabulary from open_clip"
    curl -fsSL -o "$VOCAB.tmp" \
      https://github.com/mlfoundations/open_clip/raw/v3.3.0/src/open_clip/bpe_simple_vocab_16e6.txt.gz
    mv "$VOCAB.tmp" "$VOCAB"
  fi
fi

# 1. Synthetic tiles: train / val / held-out zero-shot splits, captions, zeroshot.yaml (class prompts).
if [ ! -f "$DEMO/tiles/zeroshot.yaml" ]; then
  "$BIN" synth tiles --out "$DEMO/tiles" --size 64 --train-per-class 250 --val-per-class 25 \
    --zeroshot-per-class 50 --seed 0
fi
# 2. Tiles shards (HDF5) with a manifest per split.
for split in train val zeroshot; do
  if [ ! -f "$DEMO/shards/$split/manifest.json" ]; then
    "$BIN" shards build "$DEMO/tiles/$split.csv" --out "$DEMO/shards/$split"
  fi
done

# 3. Train on 2 ranks; evaluation (zero-shot + retrieval) runs on both ranks every eval.every steps. Every demo is a
# new run (the config leaves run.name to the job): runs/clip-<date>-<time>/ with results.json, loss.png and eval.png.
RUN=clip-$(date +%Y%m%d-%H%M%S)
MPI_FLAGS=(-np 2 --oversubscribe -x OMP_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
mpirun "${MPI_FLAGS[@]}" "$BIN" train configs/clip/demo_tiny.yaml run.name="$RUN" clip.vocab="$VOCAB" "$@"

# 4. The exported model (a transformers CLIPModel directory) on the held-out tiles, again on 2 ranks.
METRICS=$(mpirun "${MPI_FLAGS[@]}" "$BIN" eval --model "runs/$RUN/export" --zeroshot "$DEMO/shards/zeroshot" \
  --classes "$DEMO/tiles/zeroshot.yaml" --val "$DEMO/shards/val" | tail -n 1)
echo "metrics of runs/$RUN/export: $METRICS"
TOP1=$(echo "$METRICS" | sed -n 's/.*"zeroshot\/top1":\([0-9.eE+-]*\).*/\1/p')
echo "zero-shot top-1 accuracy on held-out tiles: $TOP1 (chance 0.125 for 8 classes)"
