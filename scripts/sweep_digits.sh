#!/usr/bin/env bash
# The sweep behind the digits defaults (issue 25): each SETTING below trains the default digits run
# (`meanflow train --dataset digits`, class-conditional, no guidance) with one change, on each seed
# of SEEDS, and `meanflow quality` scores its 1- and 2-step samples (100 per class, noise seed
# 1000 + seed): class accuracy, Fréchet distance in the classifier's features (floor 2.81 at
# this size), memorisation. Training time is recorded, since the default must fit in 5 minutes on
# one core.
#
#   scripts/sweep_digits.sh [OUT_DIR]          (default runs/sweep-digits)
#   SETTINGS="base|p1:--p 1 --c 0.01" SEEDS="0 1 2" JOBS=2 BIN=target/release/meanflow
#
# SETTINGS is a |-separated list of name:flags (flags may be empty). Writes OUT_DIR/<name>-s<seed>/
# run folders and OUT_DIR/sweep.jsonl (one line per score) and prints a table of means and ranges.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/sweep-digits}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0 1 2}
SETTINGS=${SETTINGS:-"base:|p1:--p 1 --c 0.01|fourier:--conditioning fourier4|h-fourier:--conditioning h-fourier4|beta2:--beta2 0.95|steps60k:--steps 60000"}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/meanflow
fi
mkdir -p "$OUT"

train_and_score() { # name seed flags...
  local name=$1 seed=$2 dir="$OUT/$1-s$2"; shift 2
  if [ ! -f "$dir/done" ]; then
    rm -rf "$dir"
    local start; start=$(date +%s.%N)
    # shellcheck disable=SC2068
    "$BIN" train --dataset digits $@ --seed "$seed" --eval-every 0 --log-every 1000 \
      --out "$dir" >"$OUT/$name-s$seed.log" 2>&1 || { echo "$name seed $seed failed" >&2; return 0; }
    python3 -c "import time,sys; print(time.time() - float(sys.argv[1]))" "$start" >"$dir/seconds"
    touch "$dir/done"
  fi
  for k in 1 2; do
    "$BIN" quality --checkpoint "$dir/checkpoint.safetensors" --seed $((1000 + seed)) \
      --steps "$k" --json "$dir/quality-$k.json" >/dev/null
    python3 -c 'import json,sys
r = json.load(open(sys.argv[1]))
r.update(setting=sys.argv[2], seed=int(sys.argv[3]), steps=int(sys.argv[4]), seconds=float(open(sys.argv[5]).read()))
print(json.dumps(r))' "$dir/quality-$k.json" "$name" "$seed" "$k" "$dir/seconds" >>"$OUT/sweep.jsonl"
  done
}

: >"$OUT/sweep.jsonl"
running=0
IFS='|' read -r -a settings <<<"$SETTINGS"
for seed in $SEEDS; do
  for setting in "${settings[@]}"; do
    name=${setting%%:*}
    flags=${setting#*:}
    # shellcheck disable=SC2086
    train_and_score "$name" "$seed" $flags &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n; running=$((running - 1)); fi
  done
done
wait

python3 - "$OUT/sweep.jsonl" <<'EOF'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = collections.defaultdict(list)
for r in rows:
    groups[(r["setting"], r["steps"])].append(r)
def cell(values, fmt):
    m = sum(values) / len(values)
    return f"{m:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"
print("| setting | steps | seeds | class accuracy | Fréchet | memorisation | train s |")
print("|---|---|---|---|---|---|---|")
for (setting, steps), rs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    acc = [r["accuracy"] for r in rs if r.get("accuracy") is not None]
    print(f"| {setting} | {steps} | {len(rs)} | {cell(acc, '.3f') if acc else '-'} | "
          f"{cell([r['frechet'] for r in rs], '.2f')} | "
          f"{cell([r['memorisation'] for r in rs], '.2f')} | "
          f"{cell([r['seconds'] for r in rs], '.0f')} |")
EOF
