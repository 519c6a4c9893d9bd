#!/usr/bin/env bash
# The README's digits table: class-conditional models of the 8x8 digits (the default
# `meanflow train --dataset digits`: 3 residual blocks of width 256, 15000 steps, label dropout
# 0.1), scored by
# `meanflow quality` (class accuracy under meanflow's classifier, Fréchet distance in its features
# against the 300 held-out digits with the floor at the same size, memorisation), 100 samples per
# class, 1 and 2 steps, for each seed of SEEDS (default "0 1 2"):
#
#   mf       --loss mf, no guidance
#   mf-cfg   --loss mf --guidance target:W (MF's guidance in the target), W the best of
#            MF_SCALES on seed 0 by 1-step Fréchet distance
#   imf      --loss imf, no guidance
#   imf-cfg  --loss imf --guidance input:2 --guidance-interval random --p 1 --c 0.01 (iMF's
#            guidance as an input with its interval drawn in training, and the official adaptive
#            weight: at p = 0 this target diverged on the MLP, see src/flow/guidance.rs), sampled
#            at w = 1 and at the best of SCALES by mean Fréchet distance, over all times and
#            with the interval INTERVAL
#   fm       the flow-matching baseline: imf-cfg with every row r = t (--frac-equal 1), sampled by
#            1 and 2 (and 100) Euler steps of the velocity u(z, t, t)
#
#   scripts/quality_digits.sh [OUT_DIR]      (default runs/quality-digits)
#
# Writes OUT_DIR/<method>-s<seed>/ run folders, OUT_DIR/quality.jsonl (one line per score) and
# prints the table (python3). Runs JOBS trainings at a time (default 2). BIN=path uses that binary.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quality-digits}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0 1 2}
MF_SCALES=${MF_SCALES:-1.5 2 3}
SCALES=${SCALES:-1 1.5 2 2.5 3}
INTERVAL=${INTERVAL:-0.4,0.65}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/meanflow
fi
mkdir -p "$OUT"
start=$(date +%s)

train_one() { # name seed flags...
  local name=$1 seed=$2 dir="$OUT/$1-s$2"; shift 2
  [ -f "$dir/checkpoint.safetensors" ] && grep -q '"step"' "$dir/metrics.jsonl" 2>/dev/null \
    && [ -f "$dir/samples.png" ] && return 0
  rm -rf "$dir"
  "$BIN" train --dataset digits "$@" --seed "$seed" --eval-every 0 --log-every 1000 \
    --out "$dir" >"$OUT/$name-s$seed.log" 2>&1
}

score() { # name seed label quality-flags...
  local name=$1 seed=$2 label=$3; shift 3
  local json="$OUT/$name-s$seed/$label.json"
  "$BIN" quality --checkpoint "$OUT/$name-s$seed/checkpoint.safetensors" --seed $((1000 + seed)) \
    --json "$json" "$@" >/dev/null
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); r.update(method=sys.argv[2], seed=int(sys.argv[3]), label=sys.argv[4]); print(json.dumps(r))' \
    "$json" "$name" "$seed" "$label" >>"$OUT/quality.jsonl"
}

parallel() { # runs "name seed flags..." lines JOBS at a time
  local running=0
  while read -r line; do
    # shellcheck disable=SC2086
    train_one $line &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  done
  wait
}

: >"$OUT/quality.jsonl"
# 1. The MF scale sweep on seed 0, and everything that has no scale to choose at training.
{
  for w in $MF_SCALES; do echo "mf-cfg$w 0 --loss mf --guidance target:$w"; done
  for seed in $SEEDS; do
    echo "mf $seed --loss mf"
    echo "imf $seed --loss imf"
    echo "imf-cfg $seed --loss imf --guidance input:2 --guidance-interval random --p 1 --c 0.01"
    echo "fm $seed --loss imf --frac-equal 1 --guidance input:2 --p 1 --c 0.01"
  done
} | parallel
best_mf=""
best_fd=""
for w in $MF_SCALES; do
  score "mf-cfg$w" 0 sweep-1step --steps 1
  fd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["frechet"])' "$OUT/mf-cfg$w-s0/sweep-1step.json")
  if [ -z "$best_fd" ] || python3 -c "import sys; sys.exit(0 if $fd < $best_fd else 1)"; then
    best_fd=$fd; best_mf=$w
  fi
done
echo "MF's best training scale on seed 0: target:$best_mf (1-step Fréchet $best_fd)" >&2
# 2. MF at its best scale on every seed (seed 0 is the sweep's run).
for seed in $SEEDS; do
  if [ "$seed" = 0 ]; then
    rm -rf "$OUT/mf-cfg-s0"; cp -r "$OUT/mf-cfg$best_mf-s0" "$OUT/mf-cfg-s0"
  else
    echo "mf-cfg $seed --loss mf --guidance target:$best_mf"
  fi
done | parallel
# 3. Scores.
for seed in $SEEDS; do
  for k in 1 2; do
    score mf "$seed" "mf-${k}step" --steps "$k"
    score mf-cfg "$seed" "mf-cfg-${k}step" --steps "$k"
    score imf "$seed" "imf-${k}step" --steps "$k"
    for w in $SCALES; do
      score imf-cfg "$seed" "imf-cfg-${k}step-w$w" --steps "$k" --guidance "$w"
      score imf-cfg "$seed" "imf-cfg-${k}step-i-w$w" --steps "$k" --guidance "$w" --interval "$INTERVAL"
      score fm "$seed" "fm-${k}euler-w$w" --euler "$k" --guidance "$w"
    done
  done
  for w in $SCALES; do score fm "$seed" "fm-100euler-w$w" --euler 100 --guidance "$w"; done
done
echo "quality runs and scores: $(( $(date +%s) - start )) s" >&2

python3 scripts/quality_digits_table.py "$OUT/quality.jsonl" "$best_mf" "$INTERVAL"
