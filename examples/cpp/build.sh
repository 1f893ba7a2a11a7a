#!/usr/bin/env bash
# Builds the C++ vision-cell example against libloupe.so (the loupe-ffi cdylib) and OpenCV.
#
#   cargo build --release -p loupe-ffi && bash examples/cpp/build.sh
#   target/release/vision_cell loupe.toml out/ part1.png part2.png
#
# Environment (all optional):
#   LOUPE_LIB_DIR   folder holding libloupe.so     (default: target/release; or tools/package-c.sh's OUT/lib)
#   OUT             the program to write           (default: $LOUPE_LIB_DIR/vision_cell)
#   CXX             C++ compiler                   (default: g++)
#   OPENCV_INCLUDE  OpenCV 4 headers               (default: /usr/include/opencv4, Debian's libopencv-*-dev)
# Next to the library the program finds it through rpath '$ORIGIN'; elsewhere through the library's absolute path.
# It loads the library by its SONAME, libloupe.so.N (N = the C API version): cargo's build folder holds a link of
# that name (made by ffi/build.rs), and tools/package-c.sh's lib/ the file itself.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
lib_dir="$(cd "${LOUPE_LIB_DIR:-$root/target/release}" && pwd)"
if command -v readelf >/dev/null; then
  soname="$(readelf -dW "$lib_dir/libloupe.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')"
  if [ -n "$soname" ] && [ ! -e "$lib_dir/$soname" ]; then
    echo "$lib_dir has no $soname, which the program would load at run time: rebuild with" \
      "cargo build -p loupe-ffi (ffi/build.rs makes the link), or use the lib/ folder of tools/package-c.sh" >&2
    exit 1
  fi
fi
out="${OUT:-$lib_dir/vision_cell}"
if [ "$(cd "$(dirname "$out")" && pwd)" = "$lib_dir" ]; then
  rpath='$ORIGIN'
else
  rpath="$lib_dir"
fi
set -x
"${CXX:-g++}" -std=c++17 -Wall -Wextra -Werror -O2 \
  -I "$root/include" -isystem "${OPENCV_INCLUDE:-/usr/include/opencv4}" \
  "$root/examples/cpp/vision_cell.cpp" -o "$out" \
  -L "$lib_dir" -lloupe -lopencv_imgcodecs -lopencv_imgproc -lopencv_core \
  -Wl,-rpath,"$rpath"
