#!/usr/bin/env bash
# Builds the C++ vision-cell example against libloupe.so (the loupe-ffi cdylib) and OpenCV.
#
#   cargo build --release -p loupe-ffi && bash examples/cpp/build.sh
#   target/release/vision_cell loupe.toml out/ part1.png part2.png
#
# Environment (all optional):
#   LOUPE_LIB_DIR   folder holding libloupe.so     (default: target/release)
#   OUT             the program to write           (default: $LOUPE_LIB_DIR/vision_cell)
#   CXX             C++ compiler                   (default: g++)
#   OPENCV_INCLUDE  OpenCV 4 headers               (default: /usr/include/opencv4, Debian's libopencv-*-dev)
# Next to the library the program finds it through rpath '$ORIGIN'; elsewhere through the library's absolute path.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
lib_dir="$(cd "${LOUPE_LIB_DIR:-$root/target/release}" && pwd)"
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
