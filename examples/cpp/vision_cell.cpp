// A vision cell using Loupe from C++17: images come from OpenCV, are handed to Loupe as views of the cv::Mat
// (no copy), and each gets a verdict (score, label, defect type), its defect regions, an overlay PNG and a mask
// PNG written by OpenCV straight from the result's memory.
//
//   usage: vision_cell CONFIG OUT_DIR IMAGE...
//     CONFIG   Loupe configuration (.toml/.json/.yaml: model.dir, prompts.bank, thresholds, ...)
//     OUT_DIR  where <image>_overlay.png and <image>_mask.png are written (must exist)
//
// Output, one block per image (floats printed with 9 significant digits, enough to read back the exact value):
//   image NAME score=S label=anomalous|normal type=T regions=N
//     region I bbox=X,Y,W,H area=A type=T mean=M max=X
// Exit status: 0 all images inspected, 1 some image failed, 2 bad usage or configuration.
//
// Build: examples/cpp/build.sh (see examples/cpp/README.md).
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "loupe.hpp"

namespace {

/// An 8-bit cv::Mat Loupe can read as it is: gray or BGR are wrapped with no copy; BGRA becomes RGBA and other
/// depths 8 bits (both copies: Loupe has no BGRA or 16-bit view format).
struct Frame {
    cv::Mat pixels;
    loupe::PixelFormat format = loupe::PixelFormat::Bgr8;
};

Frame to_frame(cv::Mat image) {
    if (image.depth() == CV_16U) {
        cv::Mat eight;
        image.convertTo(eight, CV_8U, 1.0 / 256.0);
        image = eight;
    } else if (image.depth() != CV_8U) {
        cv::Mat eight;
        image.convertTo(eight, CV_8U, 255.0);
        image = eight;
    }
    switch (image.channels()) {
        case 1:
            return {image, loupe::PixelFormat::Gray8};
        case 3:
            return {image, loupe::PixelFormat::Bgr8};
        case 4: {
            cv::Mat rgba;
            cv::cvtColor(image, rgba, cv::COLOR_BGRA2RGBA);
            return {rgba, loupe::PixelFormat::Rgba8};
        }
        default:
            throw std::runtime_error("unsupported channel count " + std::to_string(image.channels()));
    }
}

/// A Loupe view of the Mat's own memory: step[0] is the row stride, so ROIs and padded rows work too.
LoupeImageView view_of(const Frame& frame) {
    return loupe::view(frame.pixels.data, static_cast<uint32_t>(frame.pixels.cols),
                       static_cast<uint32_t>(frame.pixels.rows), frame.pixels.step[0], frame.format);
}

std::string stem_of(const std::string& path) {
    const size_t slash = path.find_last_of("/\\");
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    const size_t dot = name.find_last_of('.');
    return dot == std::string::npos ? name : name.substr(0, dot);
}

std::string name_of(const std::string& path) {
    const size_t slash = path.find_last_of("/\\");
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// Inspects one image file and prints its verdict; throws on failure.
void inspect_file(loupe::Session& session, const std::string& path, const std::string& out_dir) {
    cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
    if (image.empty()) {
        throw std::runtime_error("cannot read image " + path);
    }
    const Frame frame = to_frame(image);
    const LoupeImageView view = view_of(frame);

    // Detection and segmentation in one call.
    const loupe::Result result = session.inspect(view);
    const std::vector<loupe::Region> regions = result.regions();
    std::printf("image %s score=%.9g label=%s type=%s regions=%zu\n", name_of(path).c_str(), result.score(),
                result.is_anomalous() ? "anomalous" : "normal", result.image_type().c_str(), regions.size());
    for (size_t i = 0; i < regions.size(); ++i) {
        const loupe::Region& r = regions[i];
        std::printf("  region %zu bbox=%u,%u,%u,%u area=%u type=%s mean=%.9g max=%.9g\n", i, r.x, r.y, r.width,
                    r.height, r.area, r.type.c_str(), r.mean_score, r.max_score);
    }

    const std::string stem = out_dir + "/" + stem_of(path);
    result.write_overlay(view, stem + "_overlay.png");
    // The mask is the result's own memory, wrapped by OpenCV without a copy (valid while `result` lives).
    const loupe::MapView<uint8_t> mask = result.mask();
    const cv::Mat mask_mat(static_cast<int>(mask.height), static_cast<int>(mask.width), CV_8UC1,
                           const_cast<uint8_t*>(mask.data));
    if (!cv::imwrite(stem + "_mask.png", mask_mat)) {
        throw std::runtime_error("cannot write " + stem + "_mask.png");
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s CONFIG OUT_DIR IMAGE...\n", argv[0]);
        return 2;
    }
    const std::string out_dir = argv[2];
    try {
        loupe::check_api_version();
        // One engine per process, shared by every camera thread; one session per thread (here: one).
        const loupe::Engine engine = loupe::Engine::from_file(argv[1]);
        loupe::Session session(engine);
        std::printf("loupe %s, classes:", loupe::version().c_str());
        for (const std::string& c : engine.classes()) {
            std::printf(" %s", c.c_str());
        }
        std::printf("\n");

        int failed = 0;
        for (int i = 3; i < argc; ++i) {
            try {
                inspect_file(session, argv[i], out_dir);
            } catch (const std::exception& e) {
                // One bad image must not stop the line: report it and go on.
                std::fprintf(stderr, "error: %s: %s\n", argv[i], e.what());
                ++failed;
            }
        }
        return failed == 0 ? 0 : 1;
    } catch (const loupe::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
