#!/usr/bin/env bash
# Memory-safety, leak and race checks of Loupe's C ABI (issue 12, parts 3 and 6; results in
# docs/reliability.md, "Sanitizers and leak checks"). From the repository root of a fresh clone:
#
#   bash tools/reliability/sanitizers.sh [valgrind] [asan] [tsan]     (no argument: all three)
#
#   valgrind  release libloupe.so; memcheck (--leak-check=full, definite and indirect leaks are errors) over
#             examples/c/minimal.c, examples/cpp/vision_cell.cpp and tools/reliability/leak_driver.c on the parity
#             fixture (tiny model) and on the embedded default model; the vision cell and the leak driver each run
#             with N and 4N inspections, and the leak summaries must show nothing lost and still-reachable bytes
#             that do not grow with the number of inspections.
#   asan      nightly, -Zsanitizer=address -Zbuild-std: the loupe-ffi tests that call the C functions in-process,
#             and leak_driver.c (gcc -fsanitize=address) linked against the instrumented libloupe.so, with
#             LeakSanitizer on.
#   tsan      nightly, -Zsanitizer=thread -Zbuild-std: the tests that use one engine, session or profile from
#             several threads (ffi: concurrent, inspect, profiles, log_callback, misuse, lib unit tests;
#             loupe-reference: the rayon-parallel k-NN and coreset).
#
# Time on 2 cores: valgrind ~15 min after a ~15 min release build; asan and tsan each ~20-30 min of building
# (std and every dependency instrumented) plus 5-15 min of tests. Target folders (override with the variables):
# REL_TARGET=target/reliability-release, ASAN_TARGET=target/reliability-asan, TSAN_TARGET=target/reliability-tsan;
# logs and summaries go to LOG_DIR (default target/reliability-logs). N (default 1): rounds of the small valgrind
# runs (the large ones do 4N); RUNS="name ...": only these valgrind runs (names as in the summary). Exit status: 0
# when every check passed.
# Installs what it lacks: valgrind, g++, libpng/OpenCV development packages (apt-get, as root), the nightly
# toolchain with rust-src (rustup).
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
REL_TARGET="${REL_TARGET:-$root/target/reliability-release}"
ASAN_TARGET="${ASAN_TARGET:-$root/target/reliability-asan}"
TSAN_TARGET="${TSAN_TARGET:-$root/target/reliability-tsan}"
LOG_DIR="${LOG_DIR:-$root/target/reliability-logs}"
TRIPLE=x86_64-unknown-linux-gnu
N="${N:-1}"  # rounds of the small runs; the large runs do 4N
mkdir -p "$LOG_DIR"
what=("$@")
[ ${#what[@]} -eq 0 ] && what=(valgrind asan tsan)
failures=()
fail() { echo "FAIL: $*" >&2; failures+=("$*"); }
step() { echo; echo "=== $* ($(date +%T))"; }

# --- prerequisites ----------------------------------------------------------------------------------------------
need_pkgs=()
command -v valgrind >/dev/null || need_pkgs+=(valgrind)
command -v g++ >/dev/null || need_pkgs+=(g++)
[ -f /usr/include/png.h ] || need_pkgs+=(libpng-dev)
[ -f /usr/include/opencv4/opencv2/imgcodecs.hpp ] ||
  need_pkgs+=(libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  step "apt-get install ${need_pkgs[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" ||
    { echo "cannot install ${need_pkgs[*]}" >&2; exit 2; }
fi
if [[ " ${what[*]} " == *" asan "* || " ${what[*]} " == *" tsan "* ]]; then
  if ! cargo +nightly --version >/dev/null 2>&1 || ! rustup +nightly component list --installed | grep -q rust-src; then
    step "rustup toolchain install nightly --component rust-src"
    rustup toolchain install nightly --profile minimal --component rust-src || exit 2
  fi
fi

fixture="$root/tests/fixtures/parity"
images=("$fixture"/images/*.png)
config="$LOG_DIR/fixture.toml"
cat >"$config" <<TOML
[model]
dir = "$fixture/model"
[prompts]
bank = "$fixture/bank.safetensors"
[postprocess]
image_threshold = 0.046
pixel_threshold = 3.2
TOML
repeat() {  # repeat K ARG...: the arguments K times over
  local k="$1"; shift
  for ((i = 0; i < k; i++)); do printf '%s\n' "$@"; done
}

# Prints "definite indirect possible reachable_bytes reachable_blocks" of a memcheck log.
leak_numbers() {
  awk '
    /definitely lost:/ { gsub(",", "", $4); d = $4 }
    /indirectly lost:/ { gsub(",", "", $4); i = $4 }
    /possibly lost:/   { gsub(",", "", $4); p = $4 }
    /still reachable:/ { gsub(",", "", $4); gsub(",", "", $7); r = $4; rb = $7 }
    /All heap blocks were freed/ { d = 0; i = 0; p = 0; r = 0; rb = 0 }
    END { printf "%s %s %s %s %s\n", d + 0, i + 0, p + 0, r + 0, rb + 0 }' "$1"
}

# memcheck NAME PROGRAM ARG...: runs under valgrind; leaks of kind definite/indirect and any memory error fail. A run
# ended by SIGTERM from outside (a shared machine's clean-up) is run again, up to 3 times; with RESUME=1 a run
# that already has its result in LOG_DIR is not repeated.
memcheck() {
  local name="$1"; shift
  if [ -n "${RUNS:-}" ] && [[ " $RUNS " != *" $name "* ]]; then return 0; fi
  local log="$LOG_DIR/valgrind-$name.log" start rc try
  if [ "${RESUME:-0}" = 1 ] && [ -f "$LOG_DIR/leaks-$name" ]; then
    echo "$name: done before (RESUME=1), see $log"
    return 0
  fi
  for try in 1 2 3; do
    start=$SECONDS
    valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible \
      --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --track-origins=yes --num-callers=40 \
      --suppressions="$root/tools/reliability/valgrind.supp" --log-file="$log" "$@" >"$LOG_DIR/valgrind-$name.out" 2>&1
    rc=$?
    grep -q 'terminating with default action of signal 15' "$log" || break
    echo "$name: killed by SIGTERM from outside (try $try), running it again" >&2
  done
  local errors suppressed
  errors="$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$log" | tail -1)"
  suppressed="$(sed -n 's/.*(suppressed: \([0-9,]*\) from.*/\1/p' "$log" | tail -1)"
  read -r d i p r rb <<<"$(leak_numbers "$log")"
  printf '%-24s rc=%-3s %5ss errors=%s (suppressed %s) definitely=%s indirectly=%s possibly=%s still_reachable=%s bytes in %s blocks\n' \
    "$name" "$rc" "$((SECONDS - start))" "${errors:-?}" "${suppressed:-0}" "$d" "$i" "$p" "$r" "$rb" |
    tee -a "$LOG_DIR/summary.txt"
  if [ "$rc" -ne 0 ]; then
    fail "valgrind $name: exit $rc (see $log)"
  else
    echo "$d $i $p $r" >"$LOG_DIR/leaks-$name"
  fi
}

# no_growth SMALL LARGE: still-reachable and possibly-lost bytes must not grow with the number of inspections.
no_growth() {
  [ -f "$LOG_DIR/leaks-$1" ] && [ -f "$LOG_DIR/leaks-$2" ] || return 0
  read -r _ _ pa ra <"$LOG_DIR/leaks-$1"
  read -r _ _ pb rb <"$LOG_DIR/leaks-$2"
  if [ "$rb" -gt "$ra" ] || [ "$pb" -gt "$pa" ]; then
    fail "grew from $1 to $2: still reachable $ra -> $rb bytes, possibly lost $pa -> $pb bytes"
  else
    echo "no growth $1 -> $2: still reachable $ra -> $rb bytes, possibly lost $pa -> $pb bytes" |
      tee -a "$LOG_DIR/summary.txt"
  fi
}

build_c_programs() {  # build_c_programs LIBDIR OUTDIR EXTRA_FLAGS...
  local lib="$1" out="$2"; shift 2
  mkdir -p "$out"
  cc -std=c11 -Wall -Wextra -Werror -pedantic -g "$@" -I include examples/c/minimal.c -o "$out/minimal" \
    -L "$lib" -lloupe -Wl,-rpath,"$lib" &&
    cc -std=c11 -Wall -Wextra -Werror -g -O1 "$@" -I include tools/reliability/leak_driver.c -o "$out/leak_driver" \
      -L "$lib" -lloupe -lpng -Wl,-rpath,"$lib" &&
    g++ -std=c++17 -Wall -Wextra -Werror -O1 -g "$@" -I include -isystem /usr/include/opencv4 \
      examples/cpp/vision_cell.cpp -o "$out/vision_cell" -L "$lib" -lloupe -lopencv_imgcodecs -lopencv_imgproc \
      -lopencv_core -Wl,-rpath,"$lib"
}

# --- valgrind memcheck --------------------------------------------------------------------------------------------
if [[ " ${what[*]} " == *" valgrind "* ]]; then
  step "release build of libloupe (CARGO_TARGET_DIR=$REL_TARGET)"
  # With the soak example: one feature resolution for both (tools: ffi/examples/soak.rs).
  CARGO_TARGET_DIR="$REL_TARGET" cargo build --release -p loupe-ffi --lib --example soak || exit 2
  lib="$REL_TARGET/release"
  bin="$LOG_DIR/bin-release"
  build_c_programs "$lib" "$bin" || exit 2
  out="$LOG_DIR/out"; mkdir -p "$out"
  step "valgrind memcheck"
  echo "# valgrind memcheck ($(valgrind --version)), $(date -u +%FT%TZ)" >>"$LOG_DIR/summary.txt"
  memcheck minimal-c "$bin/minimal" "$config" "$out/minimal_overlay.png"
  # The vision cell: every image N and 4N times, with a profile of golden samples, re-thresholding and JSON.
  cell_args=(--rethreshold 2.5 --json --profile acme="$fixture/images")
  mapfile -t small < <(repeat "$N" "${images[@]}")
  mapfile -t large < <(repeat "$((4 * N))" "${images[@]}")
  memcheck "vision-cell-x$N" "$bin/vision_cell" "$config" "$out" "${cell_args[@]}" "${small[@]}"
  memcheck "vision-cell-x$((4 * N))" "$bin/vision_cell" "$config" "$out" "${cell_args[@]}" "${large[@]}"
  no_growth "vision-cell-x$N" "vision-cell-x$((4 * N))"
  memcheck "vision-cell-mutual-x$N" "$bin/vision_cell" "$config" "$out" --mutual 4 "${small[@]}"
  # The leak driver (every C function that allocates), N and 4N rounds on one engine.
  memcheck "leak-driver-x$N" "$bin/leak_driver" "$config" "$N" "$out" "${images[@]}"
  memcheck "leak-driver-x$((4 * N))" "$bin/leak_driver" "$config" "$((4 * N))" "$out" "${images[@]}"
  no_growth "leak-driver-x$N" "leak-driver-x$((4 * N))"
  # A new engine in every round: engine creation and destruction must not leak either.
  memcheck "engine-per-round-x1" "$bin/leak_driver" --engine-per-round "$config" 1 "$out" "${images[@]}"
  memcheck "engine-per-round-x3" "$bin/leak_driver" --engine-per-round "$config" 3 "$out" "${images[@]}"
  no_growth "engine-per-round-x1" "engine-per-round-x3"
  # The embedded default model (loupe_engine_create_default), 160x160 input: 2 images, 1 and 3 rounds.
  memcheck "default-model-x1" "$bin/leak_driver" - 1 "$out" "${images[0]}" "${images[2]}"
  memcheck "default-model-x3" "$bin/leak_driver" - 3 "$out" "${images[0]}" "${images[2]}"
  no_growth "default-model-x1" "default-model-x3"
fi

# --- AddressSanitizer + LeakSanitizer -----------------------------------------------------------------------------
if [[ " ${what[*]} " == *" asan "* ]]; then
  export RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1"
  asan_cargo=(cargo +nightly test -Zbuild-std --target "$TRIPLE" --target-dir "$ASAN_TARGET" -p loupe-ffi)
  step "ASan: loupe-ffi in-process tests"
  start=$SECONDS
  # The tests that link C programs (cpp_*, shared_library, header_drift) build the library again with cargo and
  # are left to the release run.
  if "${asan_cargo[@]}" --lib --test concurrent --test inspect --test inspect_options --test batch_and_formats \
    --test null_and_stale --test profiles --test config_errors --test log_callback \
    >"$LOG_DIR/asan-tests.log" 2>&1; then
    echo "asan ffi tests: passed in $((SECONDS - start))s: $(grep -c '^test .* ok$' "$LOG_DIR/asan-tests.log") tests" |
      tee -a "$LOG_DIR/summary.txt"
  else
    fail "ASan ffi tests (see $LOG_DIR/asan-tests.log)"
  fi
  step "ASan: libloupe.so instrumented, leak_driver and minimal.c with -fsanitize=address"
  CARGO_TARGET_DIR="$ASAN_TARGET" cargo +nightly build -Zbuild-std --target "$TRIPLE" -p loupe-ffi --lib \
    >>"$LOG_DIR/asan-build.log" 2>&1 || fail "ASan build of libloupe.so (see $LOG_DIR/asan-build.log)"
  lib="$ASAN_TARGET/$TRIPLE/debug"
  bin="$LOG_DIR/bin-asan"
  if build_c_programs "$lib" "$bin" -fsanitize=address -fno-omit-frame-pointer; then
    out="$LOG_DIR/out-asan"; mkdir -p "$out"
    for run in "minimal $bin/minimal $config $out/minimal_overlay.png" \
      "leak-driver $bin/leak_driver $config $N $out ${images[*]}" \
      "vision-cell $bin/vision_cell $config $out --rethreshold 2.5 --json --profile acme=$fixture/images ${images[*]}"; do
      read -r name cmd <<<"$run"
      start=$SECONDS
      # shellcheck disable=SC2086
      if $cmd >"$LOG_DIR/asan-$name.log" 2>&1; then
        echo "asan $name: clean in $((SECONDS - start))s (no ASan/LSan report)" | tee -a "$LOG_DIR/summary.txt"
      else
        fail "ASan $name (see $LOG_DIR/asan-$name.log)"
      fi
    done
  else
    fail "building the C programs with -fsanitize=address"
  fi
  unset RUSTFLAGS RUSTDOCFLAGS
fi

# --- ThreadSanitizer ----------------------------------------------------------------------------------------------
if [[ " ${what[*]} " == *" tsan "* ]]; then
  export RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread"
  export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:report_signal_unsafe=0:suppressions=$root/tools/reliability/tsan.supp"
  tsan_cargo=(cargo +nightly test -Zbuild-std --target "$TRIPLE" --target-dir "$TSAN_TARGET")
  # misuse.rs loads the fault fixture plugin: an uninstrumented release build (a plugin is its own Rust world
  # behind the C ABI), found through LOUPE_TEST_CDYLIB_DIR instead of a workspace build with TSan flags.
  step "release build of the fault fixture plugin (CARGO_TARGET_DIR=$REL_TARGET)"
  RUSTFLAGS= CARGO_TARGET_DIR="$REL_TARGET" cargo build --release -p loupe-fixture-panicking || exit 2
  export LOUPE_TEST_CDYLIB_DIR="$REL_TARGET/release"
  ffi_tests=(--lib --test concurrent --test inspect --test profiles --test log_callback --test misuse)
  for run in "ffi -p loupe-ffi ${ffi_tests[*]}" "reference -p loupe-reference --lib"; do
    read -r name args <<<"$run"
    step "TSan: $name"
    start=$SECONDS
    # shellcheck disable=SC2086
    "${tsan_cargo[@]}" $args >"$LOG_DIR/tsan-$name.log" 2>&1
    rc=$?
    races="$(grep -c 'WARNING: ThreadSanitizer' "$LOG_DIR/tsan-$name.log")"
    echo "tsan $name: exit $rc in $((SECONDS - start))s, $races ThreadSanitizer reports" | tee -a "$LOG_DIR/summary.txt"
    [ "$rc" -eq 0 ] && [ "$races" -eq 0 ] || fail "TSan $name (see $LOG_DIR/tsan-$name.log)"
  done
  unset RUSTFLAGS RUSTDOCFLAGS
fi

echo
cat "$LOG_DIR/summary.txt"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "all checks passed"
