#!/usr/bin/env bash
# The README's quality table: for each of six 2-D datasets, an MLP 3 x 128 trained with mf, with
# imf, and as a flow-matching baseline (imf with every row r = t, which is plain flow matching);
# sliced W1 (1024 directions, 5000 points) of 1-step and 2-step samples (EMA weights) against
# 5000 fresh (held-out) points of the dataset, the baseline's 100 Euler steps, and the
# data-vs-data floor at the same n. Each cell is trained with every seed of SEEDS (default
# "0 1 2"); the table gives the mean and the spread (min-max) over them.
#
#   scripts/quality_table.sh [OUT_DIR] [STEPS]      (defaults: runs/quality, 30000)
#
# Writes OUT_DIR/<dataset>-<method>-s<seed>/ run folders, OUT_DIR/quality.jsonl (one line per
# number) and OUT_DIR/quality.md (the table). Runs two trainings at a time (JOBS=1 for one).
# BIN=path uses that binary instead of building target/release/meanflow.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quality}
STEPS=${2:-30000}
JOBS=${JOBS:-2}
DATASETS=${DATASETS:-"swiss_roll pinwheel checkerboard two_moons eight_gaussians two_spirals"}
SEEDS=${SEEDS:-0 1 2}
N=5000
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/meanflow
fi
mkdir -p "$OUT"

train_one() { # dataset method seed
  local ds=$1 method=$2 seed=$3 dir="$OUT/$1-$2-s$3"
  [ -f "$dir/checkpoint.safetensors" ] && return 0
  rm -rf "$dir"
  case $method in
    mf) extra=(--loss mf) ;;
    imf) extra=(--loss imf) ;;
    fm) extra=(--loss imf --frac-equal 1) ;;
  esac
  "$BIN" train --dataset "$ds" "${extra[@]}" --seed "$seed" --steps "$STEPS" --eval-every 0 \
    --log-every 1000 --out "$dir" >"$OUT/$ds-$method-s$seed.log" 2>&1
}

evaluate() { # dataset method seed label sample-flags...
  local ds=$1 method=$2 seed=$3 label=$4; shift 4
  local run="$OUT/$ds-$method-s$seed"
  local ck="$run/checkpoint.safetensors" s="$run/$label.npy"
  # Sampling noise and held-out points from their own seeds per training seed.
  "$BIN" sample --checkpoint "$ck" --ema --n $N --seed $((1000 + seed)) --out "$s" "$@" >/dev/null
  "$BIN" eval --samples "$s" --dataset "$ds" --seed $((2000 + seed)) --json "$run/$label.json" >/dev/null
  python3 - "$run/$label.json" "$ds" "$method" "$seed" "$label" >>"$OUT/quality.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"dataset": sys.argv[2], "method": sys.argv[3], "seed": int(sys.argv[4]),
                  "sampler": sys.argv[5], "sliced_w1": r["sliced_w1"],
                  "floor": r["floor"]["sliced_w1"], "energy_distance": r["energy_distance"]}))
PY
}

start=$(date +%s)
jobs_running=0
for seed in $SEEDS; do
for ds in $DATASETS; do
  for method in mf imf fm; do
    train_one "$ds" "$method" "$seed" &
    jobs_running=$((jobs_running + 1))
    if [ "$jobs_running" -ge "$JOBS" ]; then wait -n; jobs_running=$((jobs_running - 1)); fi
  done
done
done
wait
echo "trained in $(( $(date +%s) - start )) s"

: >"$OUT/quality.jsonl"
for seed in $SEEDS; do
  for ds in $DATASETS; do
    evaluate "$ds" mf "$seed" one_step --steps 1
    evaluate "$ds" mf "$seed" two_step --steps 2
    evaluate "$ds" imf "$seed" one_step --steps 1
    evaluate "$ds" imf "$seed" two_step --steps 2
    evaluate "$ds" fm "$seed" euler100 --euler 100
  done
done

python3 - "$OUT/quality.jsonl" "$STEPS" >"$OUT/quality.md" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
seeds = sorted({r["seed"] for r in rows})
def cell(values):
    m = statistics.mean(values)
    return f"{m:.3f} ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else f"{m:.3f}"
cols = [("mf", "one_step"), ("mf", "two_step"), ("imf", "one_step"), ("imf", "two_step"), ("fm", "euler100")]
print("| dataset | MF 1-step | MF 2-step | iMF 1-step | iMF 2-step | FM 100 Euler | data floor |")
print("|---|---|---|---|---|---|---|")
for ds in dict.fromkeys(r["dataset"] for r in rows):
    of = lambda m, s: [r["sliced_w1"] for r in rows if (r["dataset"], r["method"], r["sampler"]) == (ds, m, s)]
    floors = [r["floor"] for r in rows if (r["dataset"], r["method"], r["sampler"]) == (ds, "fm", "euler100")]
    print(f"| {ds} | " + " | ".join(cell(of(m, s)) for m, s in cols) + f" | {cell(floors)} |")
print(f"\nSliced W1 (1024 directions), 5000 samples vs 5000 held-out data points; mean (min-max) over "
      f"seeds {', '.join(map(str, seeds))}; MLP 3 x 128 silu, batch 256, {sys.argv[2]} steps, EMA 0.999 weights.")
PY
cat "$OUT/quality.md"
