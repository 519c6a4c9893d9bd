"""Sums criterion's `step_<config>_products` results (benches/matmul.rs) into the GEMM floor of a
training step: per config and backend, sum over products of (median time x count per step), and
the GFLOP/s that makes. Run after `cargo bench --bench matmul -- step_`:

    MATMUL_NUM_THREADS=1 taskset -c 0 cargo bench --bench matmul -- step_ --warm-up-time 1 --measurement-time 2
    python3 benches/sum_step_products.py [target/criterion]
"""
import json
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")
# Criterion writes the id "<backend>/<what>_m.._k.._n.._x<count>" as the folder "<backend>_<what>...".
pattern = re.compile(r"^(gemm|matrixmultiply)_(\w+?)_m(\d+)_k(\d+)_n(\d+)_x(\d+)$")
totals = {}
for estimates in sorted(root.glob("step_*_products/*/new/estimates.json")):
    config = estimates.parts[-4].removeprefix("step_").removesuffix("_products")
    match = pattern.match(estimates.parts[-3])
    if not match:
        continue
    backend, what, m, k, n, count = match.groups()
    seconds = json.loads(estimates.read_text())["median"]["point_estimate"] * 1e-9
    flops = 2 * int(m) * int(k) * int(n)
    entry = totals.setdefault((config, backend), {"ms": 0.0, "flops": 0, "products": []})
    entry["ms"] += seconds * int(count) * 1e3
    entry["flops"] += flops * int(count)
    entry["products"].append(f"{what} {flops / seconds / 1e9:.1f}")
print("| config | backend | GEMM floor ms per step | GFLOP/s | per product (GFLOP/s) |")
print("|---|---|---|---|---|")
for (config, backend), entry in sorted(totals.items()):
    gflops = entry["flops"] / (entry["ms"] * 1e-3) / 1e9
    print(f"| {config} | {backend} | {entry['ms']:.3f} | {gflops:.1f} | {'; '.join(entry['products'])} |")
