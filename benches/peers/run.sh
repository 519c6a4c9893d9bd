#!/usr/bin/env bash
# Runs the training-step benchmark of meanflow and its JAX and PyTorch peers side by side, one
# process per (config, loss, threads), and prints the ratio table (benches/peers/compare.py).
#
#   pip install "jax[cpu]"                # once; PyTorch is optional: pip install torch
#   TORCH_PYTHON=/path/to/venv/bin/python # where torch lives, if not in python3
#   JAX_PYTHON=/path/to/venv/bin/python   # where JAX lives, if not in python3 (without JAX, or
#                                         # torch, that peer is skipped and said so)
#   benches/peers/run.sh [CONFIGS...]     # default: c1 c2 c3 c4 (mlp); r1 r2 are the resmlp
#                                         # ones (src/bench/step.rs); ROUNDS=3, OUT=target/peers.jsonl
#   THREADS="1"                           # thread counts to run [default: 1 2]
#   MEANFLOW=/path/to/meanflow            # time this build instead of building target/release/
#                                         # meanflow (a copy stays put while the tree is rebuilt)
#   BASELINE=/path/to/older/meanflow      # also time another build of meanflow (say the last commit
#                                         # before a change), interleaved the same way; the table
#                                         # then shows meanflow / baseline. A command with words
#                                         # works too: BASELINE="env MEANFLOW_GEMM=matrixmultiply
#                                         # target/release/meanflow" times the other GEMM backend
#
# Threads: 1 thread = pinned to core 0 (taskset -c 0), 2 threads = cores 0 and 1. meanflow splits
# the batch across its threads (--threads); XLA sizes its thread pools from the affinity mask.
set -euo pipefail
cd "$(dirname "$0")/../.."
configs=("${@:-c1 c2 c3 c4}")
out=${OUT:-target/peers.jsonl}
TORCH_PYTHON=${TORCH_PYTHON:-python3}   # a Python with torch, if any (it is a multi-GB install)
JAX_PYTHON=${JAX_PYTHON:-python3}       # a Python with jax[cpu], if any
THREADS=${THREADS:-1 2}
# Rounds: every cell runs meanflow, JAX and PyTorch one after the other, ROUNDS times over; the
# table takes the median of the rounds' medians. On a shared (virtual) machine the speed drifts by
# 10-20% between minutes, so interleaving keeps the drift out of the ratios.
ROUNDS=${ROUNDS:-3}
if [ -z "${MEANFLOW:-}" ]; then
  cargo build --release --quiet
  MEANFLOW=target/release/meanflow
fi
have_torch=$("$TORCH_PYTHON" -c "import torch" 2>/dev/null && echo yes || echo no)
have_jax=$("$JAX_PYTHON" -c "import jax" 2>/dev/null && echo yes || echo no)
[ "$have_jax" = yes ] || echo "run.sh: no jax in $JAX_PYTHON, JAX skipped" >&2
[ "$have_torch" = yes ] || echo "run.sh: no torch in $TORCH_PYTHON, PyTorch skipped" >&2
: > "$out"
for config in ${configs[@]}; do
  for loss in mf imf; do
    for threads in $THREADS; do
      cpus=$([ "$threads" = 1 ] && echo 0 || echo 0,1)
      for round in $(seq "$ROUNDS"); do
        tag="s/^{/{\"round\":$round,/"
        MATMUL_NUM_THREADS=1 taskset -c "$cpus" "$MEANFLOW" bench --config "$config" --loss "$loss" --threads "$threads" --json \
          | grep '"config"' | sed "$tag" >> "$out"
        if [ -n "${BASELINE:-}" ]; then
          # shellcheck disable=SC2086 # $BASELINE may be a command with arguments: split it
          MATMUL_NUM_THREADS=1 taskset -c "$cpus" $BASELINE bench --config "$config" --loss "$loss" --threads "$threads" --json \
            | grep '"config"' | sed "$tag" | sed 's/^{/{"peer":"baseline",/' >> "$out"
        fi
        if [ "$have_jax" = yes ]; then
          taskset -c "$cpus" "$JAX_PYTHON" benches/peers/jax_step.py --config "$config" --loss "$loss" --threads "$threads" \
            | grep '"config"' | sed "$tag" >> "$out"
        fi
        if [ "$have_torch" = yes ]; then
          taskset -c "$cpus" "$TORCH_PYTHON" benches/peers/torch_step.py --config "$config" --loss "$loss" --threads "$threads" \
            | grep '"config"' | sed "$tag" >> "$out"
        fi
      done
    done
  done
done
python3 benches/peers/compare.py "$out"
