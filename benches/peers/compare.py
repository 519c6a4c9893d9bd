"""Reads the JSON lines of benches/peers/run.sh and prints the ratio table (markdown)."""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip().startswith("{")]
# Lines without a config (meanflow bench's first line, the FMA peak) are not measurements.
rows = [r for r in rows if "config" in r]
ours = {(r["config"], r["loss"], r["threads"]): r for r in rows if "peer" not in r}
peers = {}
for r in rows:
    if "peer" in r:
        peers[(r["peer"], r["config"], r["loss"], r["threads"])] = r

print("| config | loss | threads | meanflow ms | JAX ms | JAX / meanflow | PyTorch ms | PyTorch / meanflow | meanflow GFLOP/s | in-GEMM % of FMA peak | RSS MB meanflow / JAX |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(ours):
    m = ours[key]
    j = peers.get(("jax",) + key)
    t = peers.get(("torch",) + key)
    fmt = lambda x: f"{x:.3f}" if x is not None else "-"
    # Absent from older result files and from runs with --no-peak.
    fraction = m.get("peak_fraction")
    of_peak = f"{100 * fraction:.0f}%" if fraction is not None else "-"
    jm = j["median_ms"] if j else None
    tm = t["median_ms"] if t else None
    print(f"| {key[0]} | {key[1]} | {key[2]} | {fmt(m['median_ms'])} | {fmt(jm)} | "
          f"{(jm / m['median_ms']) if jm else float('nan'):.2f}x | {fmt(tm)} | "
          f"{(tm / m['median_ms']) if tm else float('nan'):.2f}x | {m['matmul_gflops']:.0f} | {of_peak} | "
          f"{m.get('peak_rss_mb', float('nan')):.0f} / {j['peak_rss_mb'] if j else float('nan'):.0f} |")
