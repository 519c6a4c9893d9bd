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
# compilation of this crate only; dependencies are never incremental) and a CARGO_TARGET_DIR of
# the runs' own (e.g. target/mutants: ignored by git, so cargo-mutants does not copy it into its
# scratch tree) keep each mutant's build to the crate itself once the first run has built the
# dependencies there (160 s).
#
# Time, measured on the 2-core development machine (JOBS=1, CARGO_BUILD_JOBS=1,
# CARGO_INCREMENTAL=1, with other work on the second core): 5 to 20 s per mutant with TESTS per
# file, e.g.
#   src/flow/time_sampler.rs    32 mutants  586 s  TESTS="--test sampler_statistics --test validation"
#   src/flow/guidance.rs        46 mutants  840 s  TESTS="--test conditional_loss --test loss_properties --test validation --test reference_cases --test sampler_statistics"
#   src/train/optim.rs          96 mutants 1021 s  TESTS="--test optimizer_oracle --test validation"
#   src/autodiff/dual.rs       103 mutants  669 s  TESTS="--test dual --test tape_ops"
#   src/flow/loss.rs           104 mutants  900 s  TESTS="--test loss_properties --test conditional_loss --test validation"
#   src/autodiff/elementwise.rs 50 mutants  674 s  TESTS="--test dual --test tape_ops"
#   src/autodiff/tape/mod.rs   144 mutants 2447 s  TESTS="--test tape_smoke --test tape_ops --test tape_composed --test tape_optimizations --test reference_cases --test functional"
#   src/flow/model/mod.rs      124 mutants 1489 s  TESTS="--test conditional_loss --test loss_properties --test tape_optimizations --test validation --test reference_cases --test no_alloc --test optimizer_oracle --test training_progress"
#   src/autodiff/tape/ops.rs (before its split into ops/*.rs)   497 mutants ~7500 s (15 s each; 2 builds at once and a proptest sweep on the machine)
#                              TESTS="--test tape_ops --test tape_composed --test tape_smoke --test tape_optimizations --test functional --test dual --test reference_cases --test no_alloc"
# (each total includes the baseline build in a new scratch tree, about 40 s). tape_ops does not
# differentiate through a JVP, so the elementwise kernel for f'' (second_derivative_in_place)
# needs --test tape_composed too (its reverse over forward through dense layers). Against the whole suite a mutant
# costs minutes (the library's unit tests alone run 133 s). ARGS="--iterate" with the OUT of an
# earlier run tests only the mutants it did not catch.
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${FILES:-"src/autodiff/dual.rs src/autodiff/elementwise.rs src/autodiff/tape/ops.rs src/autodiff/tape/ops/*.rs src/autodiff/tape/mod.rs src/flow/model/mod.rs src/flow/loss.rs src/flow/guidance.rs src/train/optim.rs src/flow/time_sampler.rs"}
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
