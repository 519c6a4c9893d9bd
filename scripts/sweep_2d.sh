#!/usr/bin/env bash
# The sweep behind the 2-D defaults (issue 25): each SETTING trains the default 2-D run
# (`meanflow train --dataset DS`, iMF, 30000 steps) with one change, on each dataset of DATASETS
# and seed of SEEDS, and scores its 1- and 2-step samples (5000, EMA weights) by sliced W1
# against 5000 fresh points of the dataset, with the data-vs-data floor at the same n.
#
#   scripts/sweep_2d.sh [OUT_DIR]           (default runs/sweep-2d)
#   SETTINGS="base:|res:--architecture resmlp" DATASETS="two_moons checkerboard" SEEDS="0 1 2"
#   JOBS=2 BIN=target/release/meanflow
#
# Writes OUT_DIR/<setting>-<dataset>-s<seed>/ run folders and OUT_DIR/sweep.jsonl, and prints a
# table of means and ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/sweep-2d}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0 1 2}
DATASETS=${DATASETS:-two_moons checkerboard swiss_roll}
SETTINGS=${SETTINGS:-"base:|resmlp:--architecture resmlp"}
N=5000
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/meanflow
fi
mkdir -p "$OUT"

train_and_score() { # name dataset seed flags...
  local name=$1 ds=$2 seed=$3 dir="$OUT/$1-$2-s$3"; shift 3
  rm -rf "$dir"
  local start; start=$(date +%s.%N)
  # shellcheck disable=SC2068
  "$BIN" train --dataset "$ds" $@ --seed "$seed" --eval-every 0 --log-every 1000 \
    --out "$dir" >"$dir.log" 2>&1 || { echo "$name $ds seed $seed failed" >&2; return 0; }
  local seconds; seconds=$(python3 -c "import time,sys; print(time.time() - float(sys.argv[1]))" "$start")
  for k in 1 2; do
    "$BIN" sample --checkpoint "$dir/checkpoint.safetensors" --n $N --seed $((1000 + seed)) \
      --steps "$k" --out "$dir/s$k.npy" >/dev/null
    "$BIN" eval --samples "$dir/s$k.npy" --dataset "$ds" --seed $((2000 + seed)) \
      --json "$dir/eval$k.json" >/dev/null
    python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
print(json.dumps(dict(setting=sys.argv[2], dataset=sys.argv[3], seed=int(sys.argv[4]), steps=int(sys.argv[5]),
      sliced_w1=r["sliced_w1"], floor=r["floor"]["sliced_w1"], seconds=float(sys.argv[6]))))' \
      "$dir/eval$k.json" "$name" "$ds" "$seed" "$k" "$seconds" >>"$OUT/sweep.jsonl"
  done
}

: >"$OUT/sweep.jsonl"
running=0
IFS='|' read -r -a settings <<<"$SETTINGS"
for seed in $SEEDS; do
  for ds in $DATASETS; do
    for setting in "${settings[@]}"; do
      # shellcheck disable=SC2086
      train_and_score "${setting%%:*}" "$ds" "$seed" ${setting#*:} &
      running=$((running + 1))
      if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
    done
  done
done
wait

python3 - "$OUT/sweep.jsonl" <<'PY'
import collections, json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = collections.defaultdict(list)
for r in rows:
    groups[(r["dataset"], r["steps"], r["setting"])].append(r)
def cell(v):
    return f"{st.mean(v):.4f} ({min(v):.4f}-{max(v):.4f})"
print("| dataset | steps | setting | seeds | sliced W1 | floor | train s |")
print("|---|---|---|---|---|---|---|")
for (ds, k, setting), rs in sorted(groups.items()):
    print(f"| {ds} | {k} | {setting} | {len(rs)} | {cell([r['sliced_w1'] for r in rs])} | "
          f"{st.mean(r['floor'] for r in rs):.4f} | {st.mean(r['seconds'] for r in rs):.0f} |")
PY
