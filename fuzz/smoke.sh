#!/usr/bin/env bash
# Smoke test of the fuzz targets, for CI: builds every target once (nightly, `cargo fuzz build -O`), then runs
# each over its committed seeds (fuzz/corpus/<target>) and regressions (fuzz/regressions/<target>) followed by a
# short random run (SMOKE_SECONDS each, default 6), and fails if any target crashes, times out or runs out of
# memory. New inputs go to a scratch corpus under the target directory, never into the committed seeds.
#
#   bash fuzz/smoke.sh                  (from anywhere; a fresh clone is enough)
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); installs cargo-fuzz if missing. Honours
# CARGO_TARGET_DIR (default: fuzz/target). SMOKE_SECONDS=0 only replays the seeds and regressions.
set -euo pipefail

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$fuzz_dir/.."
seconds="${SMOKE_SECONDS:-6}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

target_dir="${CARGO_TARGET_DIR:-$fuzz_dir/target}"
mkdir -p "$target_dir"
target_dir="$(cd "$target_dir" && pwd)"
triple="$(rustc "+$toolchain" -vV | sed -n 's/^host: //p')"

start=$(date +%s)
cargo "+$toolchain" fuzz build -O --fuzz-dir "$fuzz_dir" --target-dir "$target_dir"
echo "smoke: fuzz build took $(( $(date +%s) - start )) s"

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
    bin="$target_dir/$triple/release/$name"
    work="$target_dir/smoke-corpus/$name"
    mkdir -p "$work"
    dirs=("$work" "$fuzz_dir/corpus/$name")
    [ -d "$fuzz_dir/regressions/$name" ] && dirs+=("$fuzz_dir/regressions/$name")
    echo "smoke: $name (${seconds} s)"
    # -timeout=10: a slow CI machine must not turn a 1 s input into a false alarm; the long runs use 1 s.
    # shellcheck disable=SC2086
    if ! "$bin" -rss_limit_mb=4096 -timeout=10 -max_len="$max_len" -max_total_time="$seconds" \
        -runs=$([ "$seconds" = 0 ] && echo 0 || echo -1) -print_final_stats=1 \
        -artifact_prefix="$target_dir/smoke-artifacts-$name-" $extra "${dirs[@]}" \
        >"$target_dir/smoke-$name.log" 2>&1; then
        echo "smoke: $name FAILED; log: $target_dir/smoke-$name.log"
        tail -n 40 "$target_dir/smoke-$name.log"
        failed+=("$name")
    else
        grep -E '^stat::number_of_executed_units' "$target_dir/smoke-$name.log" | sed "s/^/smoke: $name /" || true
    fi
done

echo "smoke: total $(( $(date +%s) - start )) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "smoke: failing targets: ${failed[*]}"
    exit 1
fi
echo "smoke: all targets passed"
