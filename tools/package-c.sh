#!/usr/bin/env bash
# Packages the C library the way distributions ship one, from a cargo build of loupe-ffi (Linux, GNU binutils):
#
#   bash tools/package-c.sh [OUT]        # OUT defaults to target/dist
#
#   OUT/include/loupe.h loupe.hpp loupe_plugin.h
#   OUT/lib/libloupe.so.N          the shared library, named by its SONAME (N = LOUPE_C_API_VERSION), stripped
#                                  (strip --strip-unneeded), with a .gnu_debuglink to:
#   OUT/lib/libloupe.so.N.debug    its debug info and full symbol table (objcopy --only-keep-debug): gdb and Rust
#                                  backtraces find it beside the library or under /usr/lib/debug
#   OUT/lib/libloupe.so            -> libloupe.so.N, the development link that `-lloupe` finds at link time
#   OUT/lib/libloupe.a             the static library, debug info stripped (strip --strip-debug)
#   OUT/lib/libloupe.a.link        the flags a program linked with libloupe.a needs after it, on one line: the
#                                  system libraries rustc prints for this toolchain (--print native-static-libs)
#                                  and -Wl,-z,noexecstack (docs/c-api.md, "Linking")
#
# Cargo's release profile keeps line tables (`debug = "line-tables-only"`) so that `cargo run --release` and the CLI
# keep useful backtraces and build no slower; stripping happens here, on the copies only.
#
# Environment (all optional): PROFILE  cargo profile (default release; `dev` builds into target/debug)
#                             CARGO, OBJCOPY, STRIP, READELF  the tools (defaults: cargo, objcopy, strip, readelf)
#                             CARGO_TARGET_DIR  as for cargo (default: target/)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/dist}"
profile="${PROFILE:-release}"
cargo="${CARGO:-cargo}"
objcopy="${OBJCOPY:-objcopy}"
strip="${STRIP:-strip}"
readelf="${READELF:-readelf}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$profile" in
  dev) build_dir="$target_dir/debug" ;;
  *) build_dir="$target_dir/$profile" ;;
esac
cd "$root"

# The static library's link line: only rustc knows it, and prints it when it links a staticlib. A fresh build
# replays the note from cargo's cache, so this costs nothing when the library is up to date.
notes="$("$cargo" rustc -p loupe-ffi --profile "$profile" --locked --lib --crate-type staticlib \
  -- --print native-static-libs 2>&1)" || { printf '%s\n' "$notes" >&2; exit 1; }
native_libs="$(printf '%s\n' "$notes" | sed -n 's/^note: native-static-libs: //p' | tail -n 1)"
if [ -z "$native_libs" ]; then
  printf '%s\nno "native-static-libs" note in the output above\n' "$notes" >&2
  exit 1
fi
# All three crate types of the one build the tests use (the rustc call above builds a staticlib-only unit).
"$cargo" build -p loupe-ffi --profile "$profile" --locked --lib

so="$build_dir/libloupe.so"
soname="$("$readelf" -dW "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')"
if [ -z "$soname" ]; then
  echo "$so has no SONAME (ffi/build.rs sets it on Linux)" >&2
  exit 1
fi

rm -rf "$out/lib" "$out/include"
mkdir -p "$out/lib" "$out/include"
cp "$root"/include/loupe.h "$root"/include/loupe.hpp "$root"/include/loupe_plugin.h "$out/include/"

lib="$out/lib"
cp "$so" "$lib/$soname"
"$objcopy" --only-keep-debug "$lib/$soname" "$lib/$soname.debug"
chmod a-x "$lib/$soname.debug"
"$strip" --strip-unneeded "$lib/$soname"
# The link records the debug file's name (looked up beside the library, in .debug/, and under /usr/lib/debug) and
# its CRC; objcopy reads the file by the path given, so run it from the folder.
(cd "$lib" && "$objcopy" --add-gnu-debuglink="$soname.debug" "$soname")
ln -s "$soname" "$lib/libloupe.so"

cp "$build_dir/libloupe.a" "$lib/libloupe.a"
"$strip" --strip-debug "$lib/libloupe.a"
# Without -z noexecstack GNU ld gives the whole program an executable stack: tract's assembly kernels in the
# archive carry no .note.GNU-stack section (docs/c-api.md).
printf '%s -Wl,-z,noexecstack\n' "$native_libs" >"$lib/libloupe.a.link"

# The result must be what the comment above promises.
if "$readelf" -SW "$lib/$soname" | grep -q '\.debug_info'; then
  echo "$lib/$soname still holds debug info" >&2
  exit 1
fi
"$readelf" --string-dump=.gnu_debuglink "$lib/$soname" | grep -qF "$soname.debug" || {
  echo "$lib/$soname has no .gnu_debuglink to $soname.debug" >&2
  exit 1
}

size() { stat -c %s "$1" | awk -v f="$2" '{printf "  %-28s %7.1f MB\n", f, $1 / 1e6}'; }
echo "packaged into $out:"
size "$so" "(unstripped $(basename "$so"))"
size "$lib/$soname" "lib/$soname"
size "$lib/$soname.debug" "lib/$soname.debug"
size "$build_dir/libloupe.a" "(unstripped libloupe.a)"
size "$lib/libloupe.a" "lib/libloupe.a"
echo "  lib/libloupe.a.link: $(cat "$lib/libloupe.a.link")"
