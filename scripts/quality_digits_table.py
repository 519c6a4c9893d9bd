"""The README's digits table from the scores scripts/quality_digits.sh wrote (quality.jsonl).

Each cell: mean (min-max) over the seeds. "best" is the scale with the lowest mean Fréchet
distance among those scored; w = 2 is shown beside it, to show what guidance trades.

    python3 scripts/quality_digits_table.py OUT/quality.jsonl BEST_MF_SCALE [INTERVAL]
"""
import json
import statistics as st
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
best_mf = sys.argv[2]
interval = sys.argv[3] if len(sys.argv) > 3 else "0.4,0.65"


def pick(method, label):
    return [r for r in rows if r["method"] == method and r["label"] == label]


def cell(method, label):
    rs = pick(method, label)
    out = []
    for key, fmt in (("accuracy", "{:.3f}"), ("frechet", "{:.1f}"), ("memorisation", "{:.2f}")):
        v = [r[key] for r in rs]
        out.append(f"{fmt.format(st.mean(v))} ({fmt.format(min(v))}-{fmt.format(max(v))})")
    return out


def mean_frechet(method, label):
    return st.mean(r["frechet"] for r in pick(method, label))


def best(method, prefix):
    scales = {r["label"].split("-w")[1] for r in rows
              if r["method"] == method and r["label"].startswith(prefix + "-w")}
    return min(sorted(scales, key=float), key=lambda w: mean_frechet(method, f"{prefix}-w{w}"))


def guided(name, method, prefix, where=""):
    w = best(method, prefix)
    out = [(name, f"input, w = 1{where}", method, f"{prefix}-w1")]
    if w != "1":
        out.append((name, f"input, w = {w}{where} (best)", method, f"{prefix}-w{w}"))
    else:
        out[0] = (name, f"input, w = 1{where} (best)", method, f"{prefix}-w1")
    if w != "2" and pick(method, f"{prefix}-w2"):
        out.append((name, f"input, w = 2{where}", method, f"{prefix}-w2"))
    return out


floor = st.mean(r["frechet_floor"] for r in rows)
acc = rows[0]["classifier_held_out_accuracy"]
seeds = sorted({r["seed"] for r in rows if r["method"] == "mf"})
print(f"classifier held-out accuracy {acc:.3f}; Fréchet floor (training vs held-out digits, "
      f"n = 1000) {floor:.2f}; seeds {seeds}\n")
print("| model | guidance | steps | class accuracy | Fréchet | memorisation |")
print("|---|---|---|---|---|---|")
for k in (1, 2):
    lines = [("MF", "off", "mf", f"mf-{k}step"),
             ("MF", f"target, w = {best_mf}", "mf-cfg", f"mf-cfg-{k}step"),
             ("iMF", "off", "imf", f"imf-{k}step")]
    lines += guided("iMF", "imf-cfg", f"imf-cfg-{k}step")
    if pick("imf-cfg", f"imf-cfg-{k}step-i-w1"):
        lines += guided("iMF", "imf-cfg", f"imf-cfg-{k}step-i", f" in [{interval}]")
    lines += guided("FM (Euler)", "fm", f"fm-{k}euler")
    for name, g, method, label in lines:
        c = cell(method, label)
        print(f"| {name} | {g} | {k} | {c[0]} | {c[1]} | {c[2]} |")
for name, g, method, label in guided("FM (Euler)", "fm", "fm-100euler"):
    c = cell(method, label)
    print(f"| {name} | {g} | 100 | {c[0]} | {c[1]} | {c[2]} |")
