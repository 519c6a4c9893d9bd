#!/usr/bin/env bash
# Mutation testing of the engine core and the optimiser with cargo-mutants (outside CI: it builds
# and tests the crate once per mutant).
#
#   scripts/mutants.sh                      # every file of FILES against the whole test suite
#   FILES="src/flow/time_sampler.rs" TESTS="--test sampler_statistics" scripts/mutants.sh
#
# FILES: the files to mutate (default: the dual numbers, elementwise functions, tape, model, loss,
# guidance, optimiser and time sampler). TESTS: cargo arguments that pick the test targets each
# mutant is built with and runs, e.g. "--test dual --test tape_ops" or "--lib" (default: all of
# them; a subset is faster and can only report more survivors, never fewer). They go to every
# cargo invocation (--cargo-arg), so the build phase compiles only those targets: cargo-mutants
# passes the arguments after its `--` to the test binaries, not to cargo, and builds with
# `cargo test --no-run` in the dev profile unless told otherwise. Every build is a release build
# (--profile release). JOBS: mutants built at once (default 1; each needs its own build of the
# crate). ARGS: more cargo-mutants options (e.g. ARGS="--re record_guided_target"). Results go to
# OUT (default runs/mutants): mutants.out/outcomes.json, caught.txt, missed.txt, unviable.txt.
# Mutants that cannot change behaviour are excluded in .cargo/mutants.toml, each with the reason.
#
# Faster rebuilds: the environment passes through to cargo, so CARGO_INCREMENTAL=1 (incremental
# compilation of this crate only; dependencies are never incremental) and a CARGO_TARGET_DIR
# outside the tree that already holds the release dependencies (a copy of target/release) keep
# each mutant's build to the crate itself.
#
# Time, measured on the 2-core development machine: the unmutated baseline takes 80 s to build and
# 133 s to run the library's unit tests alone, so a mutant against the whole suite costs several
# minutes; pick TESTS per file for a run that fits in an hour.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-"src/autodiff/dual.rs src/autodiff/elementwise.rs src/autodiff/tape/ops.rs src/autodiff/tape/mod.rs src/flow/model/mod.rs src/flow/loss.rs src/flow/guidance.rs src/train/optim.rs src/flow/time_sampler.rs"}
TESTS=${TESTS:-""}
JOBS=${JOBS:-1}
ARGS=${ARGS:-""}
OUT=${OUT:-runs/mutants}
if ! command -v cargo-mutants >/dev/null; then
  cargo install cargo-mutants --locked
fi
file_args=()
for f in $FILES; do file_args+=(--file "$f"); done
test_args=()
for a in $TESTS; do test_args+=("--cargo-arg=$a"); done
mkdir -p "$OUT"
start=$(date +%s)
# shellcheck disable=SC2086
cargo mutants "${file_args[@]}" --jobs "$JOBS" --output "$OUT" --no-shuffle --profile release \
  "${test_args[@]}" $ARGS || true
echo "cargo-mutants on $FILES: $(( $(date +%s) - start )) s" >&2
for kind in caught missed unviable timeout; do
  f="$OUT/mutants.out/$kind.txt"
  [ -f "$f" ] && echo "$kind: $(wc -l <"$f")" >&2
done
