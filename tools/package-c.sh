#!/usr/bin/env bash
# Packages the C library the way distributions ship one, from a cargo build of loupe-ffi (Linux, GNU binutils):
#
#   bash tools/package-c.sh [OUT]        # OUT defaults to target/dist
#
#   OUT/include/loupe.h loupe.hpp loupe_opencv.hpp loupe_plugin.h
#   OUT/lib/libloupe.so.N          the shared library, named by its SONAME (N = LOUPE_C_API_VERSION), stripped
#                                  (strip --strip-unneeded), with a .gnu_debuglink to:
#   OUT/lib/libloupe.so.N.debug    its debug info and full symbol table (objcopy --only-keep-debug): gdb and Rust
#                                  backtraces find it beside the library or under /usr/lib/debug
#   OUT/lib/libloupe.so            -> libloupe.so.N, the development link that `-lloupe` finds at link time
#   OUT/lib/libloupe.a             the static library, debug info stripped (strip --strip-debug)
#   OUT/lib/libloupe.a.link        the flags a program linked with libloupe.a needs after it, on one line: the
#                                  system libraries rustc prints for this toolchain (--print native-static-libs)
#                                  and -Wl,-z,noexecstack (docs/c-api.md, "Linking")
#   OUT/lib/cmake/Loupe/           LoupeConfig.cmake + LoupeConfigVersion.cmake: find_package(Loupe) gives the
#                                  imported targets Loupe::loupe (shared) and Loupe::loupe_static
#   OUT/lib/pkgconfig/             loupe.pc (shared) and loupe-static.pc (the archive and its link flags)
#
# OUT is a relocatable prefix: the CMake and pkg-config files find it from their own location (CMAKE_CURRENT_LIST_DIR,
# ${pcfiledir}), so it can be copied to /usr/local, /opt/loupe or a vendor's SDK folder as it is.
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
cp "$root"/include/loupe.h "$root"/include/loupe.hpp "$root"/include/loupe_opencv.hpp "$root"/include/loupe_plugin.h \
  "$out/include/"

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

# find_package(Loupe) and pkg-config. Version: the crate's; the C API version is the SONAME's number.
version="$("$cargo" pkgid -p loupe-ffi | sed 's/.*[#@]//')"
api="${soname##*.so.}"
major="${version%%.*}"
minor="${version#*.}"
minor="${minor%%.*}"
# shellcheck disable=SC2086 # split the flags into CMake list items
cmake_libs="$(printf '%s;' $native_libs)"
mkdir -p "$lib/cmake/Loupe" "$lib/pkgconfig"
cat >"$lib/cmake/Loupe/LoupeConfig.cmake" <<CMAKE
# Loupe $version (C API $api), written by tools/package-c.sh. Imported targets:
#   Loupe::loupe         the shared library $soname (recommended)
#   Loupe::loupe_static  libloupe.a with the system libraries and -z noexecstack it needs (docs/c-api.md, "Linking")
# The prefix is found from this file's place, so the installed tree can be moved.
get_filename_component(_loupe_prefix "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(Loupe_VERSION "$version")
set(Loupe_C_API_VERSION $api)
set(Loupe_INCLUDE_DIRS "\${_loupe_prefix}/include")
if(NOT TARGET Loupe::loupe)
  add_library(Loupe::loupe SHARED IMPORTED)
  set_target_properties(Loupe::loupe PROPERTIES
    IMPORTED_LOCATION "\${_loupe_prefix}/lib/$soname"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_loupe_prefix}/include")
endif()
if(NOT TARGET Loupe::loupe_static)
  add_library(Loupe::loupe_static STATIC IMPORTED)
  set_target_properties(Loupe::loupe_static PROPERTIES
    IMPORTED_LOCATION "\${_loupe_prefix}/lib/libloupe.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES "C"
    INTERFACE_INCLUDE_DIRECTORIES "\${_loupe_prefix}/include"
    INTERFACE_LINK_LIBRARIES "${cmake_libs%;}"
    INTERFACE_LINK_OPTIONS "LINKER:-z,noexecstack")
endif()
set(Loupe_LIBRARIES Loupe::loupe)
unset(_loupe_prefix)
CMAKE
cat >"$lib/cmake/Loupe/LoupeConfigVersion.cmake" <<CMAKE
# Loupe $version: find_package(Loupe X.Y) accepts it when X.Y is not newer and, while the major version is 0,
# names the same minor version (0.x releases may change the C API; its number is also in the SONAME).
set(PACKAGE_VERSION "$version")
set(PACKAGE_VERSION_COMPATIBLE FALSE)
set(PACKAGE_VERSION_EXACT FALSE)
if(NOT CMAKE_SIZEOF_VOID_P STREQUAL "" AND NOT CMAKE_SIZEOF_VOID_P EQUAL 8)
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
  set(PACKAGE_VERSION "\${PACKAGE_VERSION} (64-bit)")
elseif("\${PACKAGE_FIND_VERSION}" STREQUAL "")
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
elseif(NOT PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  if(PACKAGE_FIND_VERSION_MAJOR EQUAL ${major} AND (${major} GREATER 0 OR PACKAGE_FIND_VERSION_MINOR EQUAL ${minor}))
    set(PACKAGE_VERSION_COMPATIBLE TRUE)
  endif()
  if(PACKAGE_FIND_VERSION VERSION_EQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
CMAKE
pc_head="prefix=\${pcfiledir}/../..
libdir=\${prefix}/lib
includedir=\${prefix}/include
"
cat >"$lib/pkgconfig/loupe.pc" <<PC
${pc_head}
Name: loupe
Description: Loupe zero-shot defect detection and segmentation, C ABI (shared library $soname)
Version: $version
Cflags: -I\${includedir}
Libs: -L\${libdir} -lloupe
PC
cat >"$lib/pkgconfig/loupe-static.pc" <<PC
${pc_head}
Name: loupe-static
Description: Loupe zero-shot defect detection and segmentation, C ABI (static library libloupe.a)
Version: $version
Cflags: -I\${includedir}
Libs: \${libdir}/libloupe.a $native_libs -Wl,-z,noexecstack
PC

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
echo "  lib/cmake/Loupe/LoupeConfig.cmake (find_package(Loupe $version): Loupe::loupe, Loupe::loupe_static)"
echo "  lib/pkgconfig/loupe.pc, loupe-static.pc (PKG_CONFIG_PATH=$lib/pkgconfig)"
