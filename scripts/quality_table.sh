#!/usr/bin/env bash
# The README's quality table: for each of six 2-D datasets, an MLP 3 x 128 trained with mf, with
# imf, and as a flow-matching baseline (imf with every row r = t, which is plain flow matching);
# sliced W1 (1024 directions, 5000 points) of 1-step and 2-step samples (EMA weights) against a
# fresh draw of the dataset, the baseline's 100 Euler steps, and the data-vs-data floor.
#
#   scripts/quality_table.sh [OUT_DIR] [STEPS]      (defaults: runs/quality, 30000)
#
# Writes OUT_DIR/<dataset>-<method>/ run folders, OUT_DIR/quality.jsonl (one line per number) and
# OUT_DIR/quality.md (the table). Runs two trainings at a time (JOBS=1 for one).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quality}
STEPS=${2:-30000}
JOBS=${JOBS:-2}
DATASETS="swiss_roll pinwheel checkerboard two_moons eight_gaussians two_spirals"
N=5000
cargo build --release --quiet
BIN=target/release/meanflow
mkdir -p "$OUT"

train_one() { # dataset method
  local ds=$1 method=$2 dir="$OUT/$1-$2"
  [ -f "$dir/checkpoint.safetensors" ] && return 0
  rm -rf "$dir"
  case $method in
    mf) extra=(--loss mf) ;;
    imf) extra=(--loss imf) ;;
    fm) extra=(--loss imf --frac-equal 1) ;;
  esac
  "$BIN" train --dataset "$ds" "${extra[@]}" --steps "$STEPS" --eval-every 0 --log-every 1000 \
    --out "$dir" >"$OUT/$ds-$method.log" 2>&1
}

evaluate() { # dataset method label sample-flags...
  local ds=$1 method=$2 label=$3; shift 3
  local ck="$OUT/$ds-$method/checkpoint.safetensors" s="$OUT/$ds-$method/$label.npy"
  "$BIN" sample --checkpoint "$ck" --ema --n $N --seed 1 --out "$s" "$@" >/dev/null
  "$BIN" eval --samples "$s" --dataset "$ds" --seed 2 --json "$OUT/$ds-$method/$label.json" >/dev/null
  python3 - "$OUT/$ds-$method/$label.json" "$ds" "$method" "$label" >>"$OUT/quality.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({"dataset": sys.argv[2], "method": sys.argv[3], "sampler": sys.argv[4],
                  "sliced_w1": r["sliced_w1"], "floor": r["floor"]["sliced_w1"],
                  "energy_distance": r["energy_distance"]}))
PY
}

start=$(date +%s)
jobs_running=0
for ds in $DATASETS; do
  for method in mf imf fm; do
    train_one "$ds" "$method" &
    jobs_running=$((jobs_running + 1))
    if [ "$jobs_running" -ge "$JOBS" ]; then wait -n; jobs_running=$((jobs_running - 1)); fi
  done
done
wait
echo "trained in $(( $(date +%s) - start )) s"

: >"$OUT/quality.jsonl"
for ds in $DATASETS; do
  evaluate "$ds" mf one_step --steps 1
  evaluate "$ds" mf two_step --steps 2
  evaluate "$ds" imf one_step --steps 1
  evaluate "$ds" imf two_step --steps 2
  evaluate "$ds" fm euler100 --euler 100
done

python3 - "$OUT/quality.jsonl" "$STEPS" >"$OUT/quality.md" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
get = {(r["dataset"], r["method"], r["sampler"]): r for r in rows}
print(f"| dataset | MF 1-step | MF 2-step | iMF 1-step | iMF 2-step | FM 100 Euler | data floor |")
print("|---|---|---|---|---|---|---|")
for ds in dict.fromkeys(r["dataset"] for r in rows):
    cells = [get[(ds, m, s)]["sliced_w1"] for m, s in
             [("mf", "one_step"), ("mf", "two_step"), ("imf", "one_step"), ("imf", "two_step"), ("fm", "euler100")]]
    floor = get[(ds, "fm", "euler100")]["floor"]
    print(f"| {ds} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {floor:.3f} |")
print(f"\nSliced W1 (1024 directions), 5000 samples vs 5000 fresh data points; MLP 3 x 128 silu, batch 256, {sys.argv[2]} steps, EMA 0.999 weights.")
PY
cat "$OUT/quality.md"
