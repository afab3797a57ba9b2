#!/usr/bin/env bash
# fuzz.sh - build the libFuzzer targets (tests/fuzz) with clang in build-fuzz and run each one.
#
# Usage: scripts/fuzz.sh [SECONDS]     (default 20 seconds of fuzzing per target)
#
# First a regression pass: every target over its seed corpus tests/fuzz/corpus/<target>/ (each
# seed run once). Then each target fuzzes for SECONDS from a copy of that corpus in a temporary
# directory (removed afterwards; the seeds in the repository are never modified), with its
# dictionary tests/fuzz/<target>.dict. Options: -timeout=5 -rss_limit_mb=2048 -max_len=8192.
# A crash, leak, timeout or failed property makes the script exit 1 after printing the
# input's path (kept under build-fuzz/fuzz-artifacts/ until the next run) and a hex dump; add
# the input to the target's corpus once the bug is fixed. Exit status 2: bad usage or no build.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

PROG=${0##*/}
SECS=${1:-20}
BUILD=build-fuzz
ARTIFACTS=$PWD/$BUILD/fuzz-artifacts
OPTS=(-timeout=5 -rss_limit_mb=2048 -max_len=8192)

die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 2; }
[[ $SECS =~ ^[1-9][0-9]*$ ]] || die "SECONDS must be a positive integer, got '$SECS'"
command -v clang >/dev/null 2>&1 ||
    die "clang not found (Debian: apt-get install clang libclang-rt-dev, or scripts/deps.sh)"

mkdir -p "$BUILD"
log=$BUILD/fuzz-build.log
if ! CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOORD_FUZZ=ON \
    -DCOORD_BUILD_TESTS=OFF -DCOORD_BUILD_EXAMPLES=OFF -DCOORD_BUILD_BENCH=OFF \
    -DCOORD_BUILD_TOOLS=OFF >"$log" 2>&1 ||
    ! cmake --build "$BUILD" -j"$(nproc)" --target fuzz >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    die "building the fuzz targets failed (log: $log)"
fi
mapfile -t targets <"$BUILD/tests/fuzz/targets.txt"
((${#targets[@]})) || die "no fuzz targets were built"

rm -rf -- "$ARTIFACTS" # only the last run's failures are kept
tmp=$(mktemp -d "${TMPDIR:-/tmp}/coord-fuzz.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Report a failed run: the essentials of libFuzzer's output, and each failing input's path and a
# hex dump. Fuzzing saves it as an artifact (copied to $ARTIFACTS); the regression pass names
# the seed it was running.
dump() { # target path
    printf '%s: %s failed on input %s (%s bytes):\n' "$PROG" "$1" "$(readlink -f -- "$2")" \
        "$(stat -c %s -- "$2")" >&2
    od -A x -t x1z -v "$2" | head -n 32 >&2
}
report() { # target log artifact-dir
    local t=$1 out=$2 dir=$3 f saved found=0
    grep -E 'ERROR|SUMMARY|property failed|runtime error|^ *#[0-9]+ ' "$out" | head -n 24 >&2 ||
        true
    mkdir -p "$ARTIFACTS/$t"
    for f in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
        [[ -e $f ]] || continue
        saved=$ARTIFACTS/$t/${f##*/}
        cp -- "$f" "$saved"
        dump "$t" "$saved"
        found=1
    done
    f=$(sed -n 's/^Running: //p' "$out" | tail -n 1)
    if ((!found)) && [[ -n $f && -f $f ]]; then
        dump "$t" "$f"
    fi
    cp -- "$out" "$ARTIFACTS/$t/${out##*/}"
    printf '%s: full output of %s: %s\n' "$PROG" "$t" "$ARTIFACTS/$t/${out##*/}" >&2
}

failed=0
declare -A broken=()
# Regression first: every seed of every target once (file arguments: nothing is fuzzed or
# written), so a known input that fails again is reported before any fuzzing.
for t in "${targets[@]}"; do
    bin=$BUILD/tests/fuzz/$t
    seeds=tests/fuzz/corpus/$t
    [[ -x $bin ]] || die "$bin was not built"
    [[ -d $seeds ]] || die "no seed corpus $seeds"
    mkdir -p "$tmp/$t/corpus" "$tmp/$t/artifacts"
    nseeds=$(find "$seeds" -maxdepth 1 -type f | wc -l)
    if "$bin" "${OPTS[@]}" -artifact_prefix="$tmp/$t/artifacts/" "$seeds"/* \
        >"$tmp/$t/regress.log" 2>&1; then
        printf '%s: regression ok: %s seeds\n' "$t" "$nseeds"
    else
        echo "$t: seed corpus regression FAILED" >&2
        report "$t" "$tmp/$t/regress.log" "$tmp/$t/artifacts"
        broken[$t]=1
        failed=1
    fi
done

for t in "${targets[@]}"; do
    [[ -z ${broken[$t]:-} ]] || continue
    bin=$BUILD/tests/fuzz/$t
    seeds=tests/fuzz/corpus/$t
    dictopt=()
    [[ -f tests/fuzz/$t.dict ]] && dictopt=(-dict="tests/fuzz/$t.dict")
    cp -- "$seeds"/* "$tmp/$t/corpus/"
    start=$SECONDS
    if ! "$bin" "${OPTS[@]}" "${dictopt[@]}" -max_total_time="$SECS" -print_final_stats=1 \
        -artifact_prefix="$tmp/$t/artifacts/" "$tmp/$t/corpus" >"$tmp/$t/fuzz.log" 2>&1; then
        echo "$t: fuzzing FAILED after $((SECONDS - start)) s" >&2
        report "$t" "$tmp/$t/fuzz.log" "$tmp/$t/artifacts"
        failed=1
        continue
    fi
    execs=$(awk '/stat::number_of_executed_units:/ { print $2 }' "$tmp/$t/fuzz.log")
    rate=$(awk '/stat::average_exec_per_sec:/ { print $2 }' "$tmp/$t/fuzz.log")
    cov=$(grep -oE 'cov: [0-9]+' "$tmp/$t/fuzz.log" | tail -n 1 | cut -d' ' -f2)
    ncorpus=$(find "$tmp/$t/corpus" -maxdepth 1 -type f | wc -l)
    printf '%s: fuzzing ok: %s s, %s runs (%s/s), %s coverage edges, corpus %s -> %s inputs\n' \
        "$t" "$((SECONDS - start))" "${execs:-?}" "${rate:-?}" "${cov:-?}" \
        "$(find "$seeds" -maxdepth 1 -type f | wc -l)" "$ncorpus"
done
exit "$failed"
