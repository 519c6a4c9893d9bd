"""Reads the JSON lines of benches/peers/run.sh and prints the ratio table (markdown).

With several rounds per cell (run.sh's ROUNDS), each engine's time is the median of its rounds'
medians and the ratio is taken between those; "rounds" shows the spread of meanflow's round medians.

"limit ms" is the step's GEMM work at the FMA peak the process measured: gemm_flops_per_step /
(fma_peak_gflops x threads), the time no engine doing these flops can beat on this machine;
"meanflow / limit" is how far the step is from it (issue 16: at most 1.5x on c2-c4, 2x on c1).
"""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
# Lines without a config (meanflow bench's first line, the FMA peak) are not measurements.
rows = [r for r in rows if "config" in r]
groups = {}
for r in rows:
    groups.setdefault((r.get("peer", "meanflow"), r["config"], r["loss"], r["threads"]), []).append(r)


def median_of(key, field="median_ms"):
    values = [r[field] for r in groups.get(key, []) if r.get(field) is not None]
    return statistics.median(values) if values else None


def fmt(x, digits=3):
    return f"{x:.{digits}f}" if x is not None else "-"


def ratio(peer_ms, ours_ms):
    return f"{peer_ms / ours_ms:.2f}x" if peer_ms is not None and ours_ms else "-"


has_baseline = any(k[0] == "baseline" for k in groups)
baseline_head = "| baseline ms | meanflow / baseline " if has_baseline else ""
print("| config | loss | threads | meanflow ms | rounds (min-max) | limit ms | meanflow / limit " + baseline_head + "| JAX ms | JAX / meanflow | PyTorch ms "
      "| PyTorch / meanflow | meanflow GFLOP/s | in-GEMM % of FMA peak | RSS MB meanflow / JAX / PyTorch |")
print("|---|---|---|---|---|---|---|" + ("---|---|" if has_baseline else "") + "---|---|---|---|---|---|---|")
for key in sorted(k[1:] for k in groups if k[0] == "meanflow"):
    ours = median_of(("meanflow",) + key)
    jax = median_of(("jax",) + key)
    torch = median_of(("torch",) + key)
    rounds = [r["median_ms"] for r in groups[("meanflow",) + key]]
    # Absent from older result files and from runs with --no-peak.
    fraction = median_of(("meanflow",) + key, "peak_fraction")
    of_peak = f"{100 * fraction:.0f}%" if fraction is not None else "-"
    gflops = median_of(("meanflow",) + key, "matmul_gflops")
    rss = " / ".join(fmt(median_of((engine,) + key, "peak_rss_mb"), 0) for engine in ("meanflow", "jax", "torch"))
    flops = median_of(("meanflow",) + key, "gemm_flops_per_step")
    peak = median_of(("meanflow",) + key, "fma_peak_gflops")
    limit = flops / (peak * 1e9 * key[2]) * 1e3 if flops and peak else None
    baseline = ""
    if has_baseline:
        base = median_of(("baseline",) + key)
        baseline = f"| {fmt(base)} | {ratio(ours, base)} "
    print(f"| {key[0]} | {key[1]} | {key[2]} | {fmt(ours)} | {fmt(min(rounds))}-{fmt(max(rounds))} "
          f"({len(rounds)}) | {fmt(limit)} | {ratio(ours, limit)} {baseline}| {fmt(jax)} | {ratio(jax, ours)} | {fmt(torch)} | {ratio(torch, ours)} | "
          f"{fmt(gflops, 0)} | {of_peak} | {rss} |")
