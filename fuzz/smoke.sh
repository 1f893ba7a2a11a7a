#!/usr/bin/env bash
# Runs the fuzz targets: builds every target once (nightly, `cargo fuzz build`, AddressSanitizer), then runs
# each over its committed seeds (fuzz/corpus/<target>) and regressions (fuzz/regressions/<target>) followed by
# random inputs, and fails if any target crashes, times out or runs out of memory. New inputs go to a scratch
# corpus under the target directory, never into the committed seeds.
#
#   bash fuzz/smoke.sh [TARGET...]          CI's smoke run: SMOKE_SECONDS (default 6) of fuzzing per target
#   FUZZ_RUNS=1000000 SMOKE_SECONDS=1800 FUZZ_TIMEOUT=1 bash fuzz/smoke.sh [TARGET...]
#                                           the long runs of docs/reliability.md: a million inputs or 30 minutes
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if missing. Honours
# CARGO_TARGET_DIR (default: fuzz/target). SMOKE_SECONDS=0 only replays the seeds and regressions. FUZZ_TIMEOUT
# (default 10 s, so that a slow CI machine does not turn a 1 s input into a false alarm) is libFuzzer's
# per-input limit; FUZZ_RSS_MB (default 4096) its memory limit. FUZZ_BUILD=release (default, `-O`: the long runs)
# or dev (unoptimised, for CI's replay and few seconds: it compiles in less time than the inputs it loses). Each
# target's statistics go to <target dir>/smoke-<target>.log and one summary line per target to stdout.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir/.."
seconds="${SMOKE_SECONDS:-6}"
runs="${FUZZ_RUNS:--1}"
timeout="${FUZZ_TIMEOUT:-10}"
rss_mb="${FUZZ_RSS_MB:-4096}"
only=("$@")
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

target_dir="${CARGO_TARGET_DIR:-$fuzz_dir/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
triple="$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')"

case "${FUZZ_BUILD:-release}" in
    release) build_flags=(-O); profile=release ;;
    # Line tables only, as the release profile keeps (fuzz/Cargo.toml); overflow checks are on in dev anyway.
    dev) build_flags=(--dev); profile=debug; export CARGO_PROFILE_DEV_DEBUG=1 ;;
    *) echo "smoke: FUZZ_BUILD must be release or dev, not '${FUZZ_BUILD}'" >&2; exit 2 ;;
esac

start=$(date +%s)
cargo "+$toolchain" fuzz build "${build_flags[@]}" --fuzz-dir "$fuzz_dir" --target-dir "$target_dir"
echo "smoke: fuzz build (${FUZZ_BUILD:-release}) took $(( $(date +%s) - start )) s"

# Target, longest input, extra libFuzzer options.
targets=(
    "image_decode 1048576"
    "image_view 65536"
    "config_text 16384 -dict=$fuzz_dir/dict/config_text.dict"
    "model_metadata 16384"
    "prompt_bank 65536"
    "profile_file 65536"
    "plugin_declaration 4096"
)

failed=()
for entry in "${targets[@]}"; do
    read -r name max_len extra <<<"$entry"
    if [ ${#only[@]} -gt 0 ] && [[ " ${only[*]} " != *" $name "* ]]; then continue; fi
    bin="$target_dir/$triple/$profile/$name"
    work="$target_dir/smoke-corpus/$name"
    mkdir -p "$work"
    dirs=("$work" "$fuzz_dir/corpus/$name")
    [ -d "$fuzz_dir/regressions/$name" ] && dirs+=("$fuzz_dir/regressions/$name")
    echo "smoke: $name (${seconds} s)"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    if ! "$bin" -rss_limit_mb="$rss_mb" -timeout="$timeout" -max_len="$max_len" -max_total_time="$seconds" \
        -runs=$([ "$seconds" = 0 ] && echo 0 || echo "$runs") -print_final_stats=1 \
        -artifact_prefix="$target_dir/smoke-artifacts-$name-" $extra "${dirs[@]}" \
        >"$target_dir/smoke-$name.log" 2>&1; then
        echo "smoke: $name FAILED; log: $target_dir/smoke-$name.log"
        tail -n 40 "$target_dir/smoke-$name.log"
        failed+=("$name")
    else
        log="$target_dir/smoke-$name.log"
        final_stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
        echo "smoke: $name: $(final_stat number_of_executed_units) inputs in $(( $(date +%s) - t0 )) s," \
            "$(final_stat average_exec_per_sec)/s, slowest $(final_stat slowest_unit_time_sec) s, peak RSS $(final_stat peak_rss_mb) MB," \
            "corpus $(find "$work" -type f | wc -l) files"
    fi
done

echo "smoke: total $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "smoke: failing targets: ${failed[*]}"
    exit 1
fi
echo "smoke: all targets passed"
