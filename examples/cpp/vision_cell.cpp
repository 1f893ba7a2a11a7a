// A vision cell using Loupe from C++17: images come from OpenCV, are handed to Loupe as views of the cv::Mat
// (no copy), and each gets a verdict (score, label, defect type), its defect regions, an overlay PNG and a mask
// PNG written by OpenCV straight from the result's memory.
//
// One engine (the backbone, loaded once) serves several customers: each `--profile` gives a customer its own
// profile (golden samples made from a folder of its good parts, or a profile file) and its own session on the
// shared engine, and every image is inspected for every customer.
//
//   usage: vision_cell CONFIG OUT_DIR [--profile NAME=DIR_OR_FILE]... [--mutual N] IMAGE...
//     CONFIG     Loupe configuration (.toml/.json/.yaml: model.dir, prompts.bank, thresholds, ...)
//     OUT_DIR    where <image>_overlay.png and <image>_mask.png are written (must exist); with profiles
//                <image>_<NAME>_overlay.png and <image>_<NAME>_mask.png
//     --profile  customer NAME's profile: a folder of good reference images (at least 2; a profile is made from
//                them with Profile::create) or a profile file (Profile::load). Repeat for more customers.
//     --mutual N score each image also against the customer session's window of its last N images (when the
//                profile holds no golden samples; N >= reference.mutual_min_pool, default 4)
//
// Output, one block per image and customer (floats printed with 9 significant digits, enough to read back the
// exact value):
//   image NAME [profile=CUSTOMER] score=S label=anomalous|normal type=T regions=N [mode=M pool=P filling=yes|no]
//     region I bbox=X,Y,W,H area=A type=T mean=M max=X
// (the bracketed fields only with --profile or --mutual). Exit status: 0 all images inspected, 1 some image
// failed, 2 bad usage, configuration or profile.
//
// Build: examples/cpp/build.sh (see examples/cpp/README.md).
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
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

Frame read_frame(const std::string& path) {
    cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
    if (image.empty()) {
        throw std::runtime_error("cannot read image " + path);
    }
    return to_frame(image);
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

/// One customer: its profile and its session on the shared engine (in a real cell: one thread each).
struct Customer {
    std::string name;  // empty: the engine's default profile, and the original output format
    loupe::Session session;
};

/// The good reference images in `dir` (image files, by name), decoded; they must outlive the views made of them.
std::vector<Frame> reference_frames(const std::filesystem::path& dir) {
    std::vector<std::filesystem::path> files;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        std::string ext = entry.path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
        const bool image = ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".tif" ||
                           ext == ".tiff";
        if (entry.is_regular_file() && image) {
            files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end());
    std::vector<Frame> frames;
    for (const auto& f : files) {
        frames.push_back(read_frame(f.string()));
    }
    return frames;
}

/// The profile of `--profile NAME=SOURCE`: made from a folder of good images, or loaded from a file.
loupe::Profile customer_profile(const loupe::Engine& engine, const std::string& name, const std::string& source) {
    if (std::filesystem::is_directory(source)) {
        const std::vector<Frame> frames = reference_frames(source);
        std::vector<LoupeImageView> views;
        for (const Frame& f : frames) {
            views.push_back(view_of(f));
        }
        loupe::ProfileOptions options;
        options.name = name;
        loupe::Profile profile = loupe::Profile::create(engine, views, options);
        std::printf("profile %s: golden samples from %zu images in %s\n", name.c_str(), views.size(),
                    source.c_str());
        return profile;
    }
    loupe::Profile profile = loupe::Profile::load(engine, source);
    std::printf("profile %s: %s loaded from %s (golden samples: %s)\n", name.c_str(), profile.name().c_str(),
                source.c_str(), profile.has_references() ? "yes" : "no");
    return profile;
}

/// Inspects one decoded image for one customer and prints the verdict; throws on failure.
void inspect_frame(Customer& customer, const Frame& frame, const std::string& path, const std::string& out_dir,
                   bool extended) {
    const LoupeImageView view = view_of(frame);

    // Detection and segmentation in one call, with the customer's profile (and window).
    const loupe::Result result = customer.session.inspect(view);
    const std::vector<loupe::Region> regions = result.regions();
    const std::string profile = customer.name.empty() ? "" : " profile=" + customer.name;
    std::printf("image %s%s score=%.9g label=%s type=%s regions=%zu", name_of(path).c_str(), profile.c_str(),
                result.score(), result.is_anomalous() ? "anomalous" : "normal", result.image_type().c_str(),
                regions.size());
    if (extended) {
        const loupe::Evidence e = result.evidence();
        std::printf(" mode=%s pool=%u filling=%s", loupe::name(e.mode), e.pool, e.window_filling ? "yes" : "no");
    }
    std::printf("\n");
    for (size_t i = 0; i < regions.size(); ++i) {
        const loupe::Region& r = regions[i];
        std::printf("  region %zu bbox=%u,%u,%u,%u area=%u type=%s mean=%.9g max=%.9g\n", i, r.x, r.y, r.width,
                    r.height, r.area, r.type.c_str(), r.mean_score, r.max_score);
    }

    const std::string stem = out_dir + "/" + stem_of(path) + (customer.name.empty() ? "" : "_" + customer.name);
    result.write_overlay(view, stem + "_overlay.png");
    // The mask is the result's own memory, wrapped by OpenCV without a copy (valid while `result` lives).
    const loupe::MapView<uint8_t> mask = result.mask();
    const cv::Mat mask_mat(static_cast<int>(mask.height), static_cast<int>(mask.width), CV_8UC1,
                           const_cast<uint8_t*>(mask.data));
    if (!cv::imwrite(stem + "_mask.png", mask_mat)) {
        throw std::runtime_error("cannot write " + stem + "_mask.png");
    }
}

int usage(const char* program) {
    std::fprintf(stderr, "usage: %s CONFIG OUT_DIR [--profile NAME=DIR_OR_FILE]... [--mutual N] IMAGE...\n",
                 program);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        return usage(argv[0]);
    }
    const std::string out_dir = argv[2];
    std::vector<std::pair<std::string, std::string>> profiles;  // NAME, DIR_OR_FILE
    long mutual = 0;
    std::vector<std::string> images;
    for (int i = 3; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "--profile" || arg == "--mutual") && i + 1 == argc) {
            return usage(argv[0]);
        }
        if (arg == "--profile") {
            const std::string value = argv[++i];
            const size_t eq = value.find('=');
            if (eq == 0 || eq == std::string::npos || eq + 1 == value.size()) {
                std::fprintf(stderr, "error: --profile expects NAME=DIR_OR_FILE, found %s\n", value.c_str());
                return 2;
            }
            profiles.emplace_back(value.substr(0, eq), value.substr(eq + 1));
        } else if (arg == "--mutual") {
            char* end = nullptr;
            mutual = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || mutual <= 0 || mutual > 1000000) {
                std::fprintf(stderr, "error: --mutual expects a number of images, found %s\n", argv[i]);
                return 2;
            }
        } else {
            images.push_back(arg);
        }
    }
    if (images.empty()) {
        return usage(argv[0]);
    }
    try {
        loupe::check_api_version();
        // One engine per process, shared by every customer and camera thread; one session per customer/thread.
        const loupe::Engine engine = loupe::Engine::from_file(argv[1]);
        std::printf("loupe %s, classes:", loupe::version().c_str());
        for (const std::string& c : engine.classes()) {
            std::printf(" %s", c.c_str());
        }
        std::printf("\n");

        std::vector<Customer> customers;
        if (profiles.empty()) {
            customers.push_back(Customer{"", loupe::Session(engine)});
        }
        for (const auto& [name, source] : profiles) {
            // The session holds its profile: the Profile object may go out of scope right after.
            const loupe::Profile profile = customer_profile(engine, name, source);
            Customer customer{name, loupe::Session(engine)};
            customer.session.set_profile(&profile);
            customers.push_back(std::move(customer));
        }
        if (mutual > 0) {
            for (Customer& c : customers) {
                c.session.set_mutual(static_cast<uint32_t>(mutual));
            }
        }
        const bool extended = !profiles.empty() || mutual > 0;

        int failed = 0;
        for (const std::string& path : images) {
            try {
                const Frame frame = read_frame(path);
                for (Customer& c : customers) {
                    inspect_frame(c, frame, path, out_dir, extended);
                }
            } catch (const std::exception& e) {
                // One bad image must not stop the line: report it and go on.
                std::fprintf(stderr, "error: %s: %s\n", path.c_str(), e.what());
                ++failed;
            }
        }
        return failed == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        // A bad configuration, profile or reference folder: nothing can be inspected.
        std::fprintf(stderr, "error: %s\n", e.what());
        return 2;
    }
}
