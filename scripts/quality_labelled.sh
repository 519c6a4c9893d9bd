#!/usr/bin/env bash
# Issue 25's check of a user's labelled table trained as given: for each FILE of FILES (a CSV
# whose last column is the class, as scikit-learn ships wine and iris) and each seed of SEEDS,
# `meanflow train --dataset FILE --label-column -1` with default settings, then
#   - per-class means: `sample --class K` (N_CLASS samples per class), the largest
#     |mean(samples) - mean(data)| / sd(data) over the class's columns, and over the classes
#     (target: at most 0.1);
#   - sliced W1 of the marginal: `sample` from the null class (the model of the whole table) and
#     `meanflow eval` against the file's features, with the data-vs-data floor at the same n
#     (target: at most 1.3x the floor).
#
#   scripts/quality_labelled.sh [OUT_DIR]       (default runs/quality-labelled)
#   FILES="tests/data/tabular/wine.csv tests/data/tabular/iris.csv" SEEDS="0 1 2" BIN=...
#
# Writes OUT_DIR/<name>-s<seed>/ run folders and OUT_DIR/labelled.jsonl, and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/quality-labelled}
SEEDS=${SEEDS:-0 1 2}
FILES=${FILES:-tests/data/tabular/wine.csv tests/data/tabular/iris.csv}
N_CLASS=${N_CLASS:-2000}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/meanflow
fi
mkdir -p "$OUT"
: >"$OUT/labelled.jsonl"
for file in $FILES; do
  name=$(basename "$file" .csv)
  # The features alone (no header, no class column), for `eval`.
  python3 - "$file" "$OUT/$name-features.csv" <<'PY'
import sys
rows = [l.strip().split(",") for l in open(sys.argv[1]) if l.strip()][1:]
with open(sys.argv[2], "w") as f:
    for r in rows:
        f.write(",".join(r[:-1]) + "\n")
PY
  for seed in $SEEDS; do
    dir="$OUT/$name-s$seed"
    rm -rf "$dir"
    start=$(date +%s.%N)
    "$BIN" train --dataset "$file" --label-column -1 --seed "$seed" --out "$dir" >"$dir.log" 2>&1
    seconds=$(python3 -c "import time,sys; print(round(time.time() - float(sys.argv[1]), 1))" "$start")
    classes=$(python3 -c "import sys; print(len(open(sys.argv[1]).readline().split(',')) - 2)" "$file")
    for k in $(seq 0 $((classes - 1))); do
      "$BIN" sample --checkpoint "$dir/checkpoint.safetensors" --class "$k" --n "$N_CLASS" \
        --seed $((1000 + seed)) --out "$dir/class$k.csv" >/dev/null
    done
    rows=$(($(wc -l <"$OUT/$name-features.csv")))
    "$BIN" sample --checkpoint "$dir/checkpoint.safetensors" --n "$rows" --seed $((2000 + seed)) \
      --out "$dir/marginal.csv" >/dev/null
    "$BIN" eval --samples "$dir/marginal.csv" --data "$OUT/$name-features.csv" --seed "$seed" \
      --json "$dir/eval.json" >/dev/null
    python3 - "$file" "$dir" "$classes" "$name" "$seed" "$seconds" >>"$OUT/labelled.jsonl" <<'PY'
import json, statistics as st, sys
file, run, classes, name, seed, seconds = sys.argv[1:]
lines = [l for l in open(file) if l.strip()][1:]  # after the n,d,names header
rows = [[float(v) for v in l.strip().split(",")] for l in lines]
worst = 0.0
per_class = []
for k in range(int(classes)):
    data = [r[:-1] for r in rows if int(r[-1]) == k]
    samples = [[float(v) for v in l.split(",")] for l in open(f"{run}/class{k}.csv") if l.strip()]
    gaps = []
    for j in range(len(data[0])):
        col = [d[j] for d in data]
        sd = st.pstdev(col)
        gaps.append(abs(st.mean(s[j] for s in samples) - st.mean(col)) / sd)
    per_class.append(max(gaps))
    worst = max(worst, max(gaps))
ev = json.load(open(f"{run}/eval.json"))
print(json.dumps({"file": name, "seed": int(seed), "train_seconds": float(seconds),
                  "worst_class_mean_gap_sd": worst, "class_mean_gap_sd": per_class, "eval": ev}))
PY
  done
done
python3 - "$OUT/labelled.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| file | seed | worst class-mean gap (sd) | sliced W1 | floor | ratio | train s |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    ev = r["eval"]
    sw, floor = ev["sliced_w1"], ev["floor"]["sliced_w1"]
    print(f"| {r['file']} | {r['seed']} | {r['worst_class_mean_gap_sd']:.3f} | {sw:.4g} | {floor:.4g} | {sw / floor:.2f} | {r['train_seconds']:.0f} |")
PY
