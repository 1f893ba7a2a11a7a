// Loupe for OpenCV: cv::Mat images as Loupe views, and result maps as cv::Mat, both without copying. Header-only,
// C++17, on top of loupe.hpp; link OpenCV's core module (-lopencv_core).
//
//   cv::Mat image = cv::imread("part.png", cv::IMREAD_UNCHANGED);   // CV_8UC1, CV_8UC3, CV_8UC4 or CV_16UC1
//   const loupe::Result r = session.inspect(loupe::view_of(image));  // no copy; ROIs and padded rows work
//   const cv::Mat mask = loupe::mask_mat(r);                        // CV_8UC1, borrowing r's memory
//   cv::imwrite("part_mask.png", mask);
//
//   cv::Mat raw12(h, w, CV_16UC1, camera_buffer);                    // a 12-bit camera's words
//   session.inspect(loupe::view_of(raw12, 12));                      // LOUPE_FORMAT_GRAY12
//   session.inspect(loupe::view_of(rgb_mat, loupe::ChannelOrder::Rgb));
//
// | cv::Mat    | Loupe format                                          |
// | ---------- | ----------------------------------------------------- |
// | CV_8UC1    | LOUPE_FORMAT_GRAY8                                    |
// | CV_8UC3    | LOUPE_FORMAT_BGR8 (ChannelOrder::Rgb: _RGB8)          |
// | CV_8UC4    | LOUPE_FORMAT_BGRA8 (ChannelOrder::Rgb: _RGBA8)        |
// | CV_16UC1   | LOUPE_FORMAT_GRAY10/12/14/16 from `bits` (default 16) |
//
// Anything else (an empty Mat, dims != 2, other depths or channel counts, `bits` other than 10, 12, 14, 16) is
// refused with loupe::Error(LOUPE_STATUS_IMAGE) naming the Mat's type and this list: convert it first
// (cv::cvtColor, Mat::convertTo).
#ifndef LOUPE_OPENCV_HPP
#define LOUPE_OPENCV_HPP

#include <cstdint>
#include <string>

#include <opencv2/core.hpp>
#include <opencv2/core/check.hpp>

#include "loupe.hpp"

namespace loupe {

/// The order of a 3- or 4-channel Mat's colour bytes: OpenCV's own (BGR, what cv::imread gives) or RGB.
enum class ChannelOrder {
    Bgr,  ///< B, G, R (, A): cv::imread, cv::VideoCapture
    Rgb,  ///< R, G, B (, A): after cv::cvtColor(..., COLOR_BGR2RGB), most camera SDKs' RGB buffers
};

namespace detail {

/// The error of a Mat Loupe cannot view: its type, its shape, why, and what is supported.
inline Error mat_error(const cv::Mat& mat, const std::string& why) {
    const std::string shape = mat.empty()      ? std::string("empty")
                              : mat.dims == 2 ? std::to_string(mat.cols) + "x" + std::to_string(mat.rows)
                                              : std::to_string(mat.dims) + " dims";
    return Error(LOUPE_STATUS_IMAGE, "cv::Mat of type " + cv::typeToString(mat.type()) + " (" + shape + "): " + why +
                                         "; supported: CV_8UC1 (gray), CV_8UC3 (BGR or RGB), CV_8UC4 (BGRA or "
                                         "RGBA), CV_16UC1 (gray of 10, 12, 14 or 16 bits)");
}

}  // namespace detail

/// A view of `mat`'s own pixels (no copy), for as long as `mat`'s data lives and is unchanged: `mat.step[0]` is
/// the row stride, so ROIs (`mat(cv::Rect(...))`) and padded rows are read in place. 8-bit 3- and 4-channel
/// Mats are read in `order`; a CV_16UC1 Mat holds `bits` significant bits per word (10, 12, 14 or 16: the value
/// `g << (bits - 8)` inspects as the 8-bit gray `g`). Throws loupe::Error(LOUPE_STATUS_IMAGE) for any other Mat
/// (see the table above) or `bits`.
inline LoupeImageView view_of(const cv::Mat& mat, ChannelOrder order = ChannelOrder::Bgr, int bits = 16) {
    if (mat.empty()) {
        throw detail::mat_error(mat, "the Mat is empty");
    }
    if (mat.dims != 2) {
        throw detail::mat_error(mat, "expected a 2-dimensional Mat (rows x cols)");
    }
    if (bits != 10 && bits != 12 && bits != 14 && bits != 16) {
        throw detail::mat_error(mat, "bits must be 10, 12, 14 or 16, found " + std::to_string(bits));
    }
    const bool rgb = order == ChannelOrder::Rgb;
    PixelFormat format = PixelFormat::Gray8;
    switch (mat.type()) {
        case CV_8UC1:
            format = PixelFormat::Gray8;
            break;
        case CV_8UC3:
            format = rgb ? PixelFormat::Rgb8 : PixelFormat::Bgr8;
            break;
        case CV_8UC4:
            format = rgb ? PixelFormat::Rgba8 : PixelFormat::Bgra8;
            break;
        case CV_16UC1:
            format = bits == 10   ? PixelFormat::Gray10
                     : bits == 12 ? PixelFormat::Gray12
                     : bits == 14 ? PixelFormat::Gray14
                                  : PixelFormat::Gray16;
            break;
        default:
            throw detail::mat_error(mat, "no Loupe pixel format for this type");
    }
    return view(mat.data, static_cast<uint32_t>(mat.cols), static_cast<uint32_t>(mat.rows), mat.step[0], format);
}

/// view_of for a CV_16UC1 Mat of `bits` significant bits (10, 12, 14 or 16); other Mats as view_of(mat).
inline LoupeImageView view_of(const cv::Mat& mat, int bits) { return view_of(mat, ChannelOrder::Bgr, bits); }

/// A result map as a cv::Mat header over the result's own memory (no copy; rows packed): CV_8UC1 for the mask,
/// CV_32FC1 for the anomaly map, CV_16UC1 for the type map.
///
/// The Mat BORROWS the Result: it is valid only while the Result that gave the map (or the Result object it was
/// moved into) lives, and must not outlive it (a Mat copy shares the same memory: clone() it to keep it). It is
/// read-only: the result is immutable and may be read by other threads, so never write into the Mat (use it as
/// the source of cv::imwrite, cv::threshold into another Mat, ...).
inline cv::Mat mat_of(const MapView<uint8_t>& map) {
    return cv::Mat(static_cast<int>(map.height), static_cast<int>(map.width), CV_8UC1,
                   const_cast<uint8_t*>(map.data));
}
/// mat_of for the anomaly map (CV_32FC1); borrows the Result, read-only.
inline cv::Mat mat_of(const MapView<float>& map) {
    return cv::Mat(static_cast<int>(map.height), static_cast<int>(map.width), CV_32FC1, const_cast<float*>(map.data));
}
/// mat_of for the type map (CV_16UC1, class indices); borrows the Result, read-only.
inline cv::Mat mat_of(const MapView<uint16_t>& map) {
    return cv::Mat(static_cast<int>(map.height), static_cast<int>(map.width), CV_16UC1,
                   const_cast<uint16_t*>(map.data));
}

/// The binary mask (0 or 255) as CV_8UC1, borrowing `result` (valid while it lives; read-only).
inline cv::Mat mask_mat(const Result& result) { return mat_of(result.mask()); }
/// The anomaly map as CV_32FC1, borrowing `result` (valid while it lives; read-only). Throws when the map was not
/// kept (InspectOptions::keep_anomaly_map).
inline cv::Mat anomaly_map_mat(const Result& result) { return mat_of(result.anomaly_map()); }
/// The type map (class index per pixel) as CV_16UC1, borrowing `result` (valid while it lives; read-only). Throws
/// when the map was not kept (InspectOptions::keep_type_map).
inline cv::Mat type_map_mat(const Result& result) { return mat_of(result.type_map()); }

}  // namespace loupe

#endif  // LOUPE_OPENCV_HPP
