// A vision cell using Loupe from C++17: images come from OpenCV, are handed to Loupe as views of the cv::Mat
// (loupe_opencv.hpp: no copy), and each gets a verdict (score, label, defect type), its defect regions, an overlay
// PNG and a mask PNG written by OpenCV straight from the result's memory.
//
// One engine (the backbone, loaded once) serves several customers: each `--profile` gives a customer its own
// profile (golden samples made from a folder of its good parts, or a profile file) and its own session on the
// shared engine, and every image is inspected for every customer.
//
//   usage: vision_cell CONFIG OUT_DIR [OPTION]... IMAGE...
//     CONFIG     Loupe configuration (.toml/.json/.yaml: model.dir, prompts.bank, thresholds, ...), or `-` for
//                Loupe's embedded default model with the default settings (no file)
//     OUT_DIR    where <image>_overlay.png and <image>_mask.png are written (must exist); with profiles
//                <image>_<NAME>_overlay.png and <image>_<NAME>_mask.png
//   options:
//     --profile NAME=DIR_OR_FILE  customer NAME's profile: a folder of good reference images (at least 2; a profile
//                is made from them with Profile::create) or a profile file (Profile::load). Repeat for more.
//     --mutual N score each image also against the customer session's window of its last N images (when the
//                profile holds no golden samples; N >= reference.mutual_min_pool, default 4)
//     --image-threshold X, --pixel-threshold X, --min-area N, --segment anomalous|all
//                per-call options (loupe::InspectOptions) given to every inspection, in place of the
//                configuration's (or the profile's) values
//     --rethreshold X  also print each result re-thresholded at pixel threshold X, from its kept maps (the model
//                does not run again)
//     --json     also write <image>[_<NAME>].json, the document `loupe inspect` writes (Result::to_json)
//     --gray-bits N  significant bits of 16-bit gray images (10, 12, 14 or 16; default 16)
//     --log-level LEVEL  Loupe's log messages of LEVEL and more severe to stderr, as `loupe: LEVEL TARGET: TEXT`:
//                off, error, warn (default), info, debug, trace
//
// Output, one block per image and customer (floats printed with 9 significant digits, enough to read back the
// exact value):
//   image NAME [profile=CUSTOMER] score=S label=anomalous|normal type=T regions=N [mode=M pool=P filling=yes|no]
//     region I bbox=X,Y,W,H area=A type=T mean=M max=X
//     rethreshold pixel_threshold=X label=anomalous|normal regions=N mask_pixels=P      (with --rethreshold)
// (the bracketed fields only with --profile or --mutual). Exit status: 0 all images inspected, 1 some image
// failed, 2 bad usage, configuration or profile.
//
// Build: examples/cpp/build.sh (see examples/cpp/README.md).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "loupe.hpp"
#include "loupe_opencv.hpp"

namespace {

/// What the command line asks of every inspection.
struct Settings {
    std::string out_dir;
    loupe::InspectOptions options;      // per-call thresholds, area, segment rule
    std::optional<float> rethreshold;   // --rethreshold X
    bool json = false;                  // --json
    int gray_bits = 16;                 // --gray-bits
    bool extended = false;              // evidence fields (with --profile or --mutual)
};

/// A decoded image Loupe can view as it is. 8-bit gray, BGR and BGRA and 16-bit gray are kept (no copy);
/// what Loupe has no view format for is converted to 8 bits (a copy): 16-bit colour, float images.
cv::Mat read_image(const std::string& path) {
    cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
    if (image.empty()) {
        throw std::runtime_error("cannot read image " + path);
    }
    const int type = image.type();
    if (type == CV_8UC1 || type == CV_8UC3 || type == CV_8UC4 || type == CV_16UC1) {
        return image;
    }
    cv::Mat eight;
    if (image.depth() == CV_16U) {
        image.convertTo(eight, CV_8U, 1.0 / 256.0);
    } else if (image.depth() != CV_8U) {
        image.convertTo(eight, CV_8U, 255.0);
    } else {
        eight = image;  // other channel counts: loupe::view_of refuses them, naming the type
    }
    return eight;
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
std::vector<cv::Mat> reference_images(const std::filesystem::path& dir) {
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
    std::vector<cv::Mat> images;
    for (const auto& f : files) {
        images.push_back(read_image(f.string()));
    }
    return images;
}

/// The profile of `--profile NAME=SOURCE`: made from a folder of good images, or loaded from a file.
loupe::Profile customer_profile(const loupe::Engine& engine, const std::string& name, const std::string& source,
                                int gray_bits) {
    if (std::filesystem::is_directory(source)) {
        const std::vector<cv::Mat> images = reference_images(source);
        std::vector<LoupeImageView> views;
        for (const cv::Mat& m : images) {
            views.push_back(loupe::view_of(m, gray_bits));
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
void inspect_image(Customer& customer, const cv::Mat& image, const std::string& path, const Settings& s) {
    const LoupeImageView view = loupe::view_of(image, s.gray_bits);

    // Detection and segmentation in one call, with the customer's profile (and window) and the per-call options
    // (none given: the configuration's).
    const loupe::Result result = customer.session.inspect(view, s.options);
    const std::vector<loupe::Region> regions = result.regions();
    const std::string profile = customer.name.empty() ? "" : " profile=" + customer.name;
    std::printf("image %s%s score=%.9g label=%s type=%s regions=%zu", name_of(path).c_str(), profile.c_str(),
                result.score(), result.is_anomalous() ? "anomalous" : "normal", result.image_type().c_str(),
                regions.size());
    if (s.extended) {
        const loupe::Evidence e = result.evidence();
        std::printf(" mode=%s pool=%u filling=%s", loupe::name(e.mode), e.pool, e.window_filling ? "yes" : "no");
    }
    std::printf("\n");
    for (size_t i = 0; i < regions.size(); ++i) {
        const loupe::Region& r = regions[i];
        std::printf("  region %zu bbox=%u,%u,%u,%u area=%u type=%s mean=%.9g max=%.9g\n", i, r.x, r.y, r.width,
                    r.height, r.area, r.type.c_str(), r.mean_score, r.max_score);
    }
    if (s.rethreshold) {
        // Another pixel threshold on the same maps: a new mask and regions, without running the model again.
        loupe::InspectOptions other = s.options;
        other.pixel_threshold = *s.rethreshold;
        const loupe::Result again = result.rethreshold(other);
        std::printf("  rethreshold pixel_threshold=%.9g label=%s regions=%zu mask_pixels=%d\n", *s.rethreshold,
                    again.is_anomalous() ? "anomalous" : "normal", again.regions().size(),
                    cv::countNonZero(loupe::mask_mat(again)));
    }

    const std::string stem = s.out_dir + "/" + stem_of(path) + (customer.name.empty() ? "" : "_" + customer.name);
    result.write_overlay(view, stem + "_overlay.png");
    // The mask is the result's own memory, wrapped by OpenCV without a copy (valid while `result` lives).
    if (!cv::imwrite(stem + "_mask.png", loupe::mask_mat(result))) {
        throw std::runtime_error("cannot write " + stem + "_mask.png");
    }
    if (s.json) {
        std::ofstream file(stem + ".json");
        file << result.to_json(name_of(path)) << "\n";
        if (!file) {
            throw std::runtime_error("cannot write " + stem + ".json");
        }
    }
}

int usage(const char* program) {
    std::fprintf(stderr,
                 "usage: %s CONFIG|- OUT_DIR [--profile NAME=DIR_OR_FILE]... [--mutual N] [--image-threshold X] "
                 "[--pixel-threshold X] [--min-area N] [--segment anomalous|all] [--rethreshold X] [--json] "
                 "[--gray-bits N] [--log-level off|error|warn|info|debug|trace] IMAGE...\n",
                 program);
    return 2;
}

/// `text` as a finite float, or nothing.
std::optional<float> parse_float(const char* text) {
    char* end = nullptr;
    const float v = std::strtof(text, &end);
    if (end == text || *end != '\0' || !std::isfinite(v)) {
        return std::nullopt;
    }
    return v;
}

/// `text` as a whole number in [low, high], or nothing.
std::optional<long> parse_count(const char* text, long low, long high) {
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || v < low || v > high) {
        return std::nullopt;
    }
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        return usage(argv[0]);
    }
    Settings settings;
    settings.out_dir = argv[2];
    std::vector<std::pair<std::string, std::string>> profiles;  // NAME, DIR_OR_FILE
    long mutual = 0;
    loupe::LogLevel log_level = loupe::LogLevel::Warn;
    std::vector<std::string> images;
    const std::vector<std::string> with_value = {"--profile",     "--mutual",  "--image-threshold", "--pixel-threshold",
                                                 "--min-area",    "--segment", "--rethreshold",     "--gray-bits",
                                                 "--log-level"};
    for (int i = 3; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool takes_value = std::find(with_value.begin(), with_value.end(), arg) != with_value.end();
        if (takes_value && i + 1 == argc) {
            return usage(argv[0]);
        }
        const char* value = takes_value ? argv[++i] : nullptr;
        const auto bad = [&](const char* expected) {
            std::fprintf(stderr, "error: %s expects %s, found %s\n", arg.c_str(), expected, value);
            return 2;
        };
        if (arg == "--profile") {
            const std::string v = value;
            const size_t eq = v.find('=');
            if (eq == 0 || eq == std::string::npos || eq + 1 == v.size()) {
                return bad("NAME=DIR_OR_FILE");
            }
            profiles.emplace_back(v.substr(0, eq), v.substr(eq + 1));
        } else if (arg == "--mutual") {
            const std::optional<long> n = parse_count(value, 1, 1000000);
            if (!n) {
                return bad("a number of images");
            }
            mutual = *n;
        } else if (arg == "--image-threshold" || arg == "--pixel-threshold" || arg == "--rethreshold") {
            const std::optional<float> x = parse_float(value);
            if (!x) {
                return bad("a number");
            }
            if (arg == "--image-threshold") {
                settings.options.image_threshold = x;
            } else if (arg == "--pixel-threshold") {
                settings.options.pixel_threshold = x;
            } else {
                settings.rethreshold = x;
            }
        } else if (arg == "--min-area") {
            const std::optional<long> n = parse_count(value, 1, 2147483647L);
            if (!n) {
                return bad("a number of pixels (at least 1)");
            }
            settings.options.min_region_area = static_cast<uint32_t>(*n);
        } else if (arg == "--segment") {
            const std::string v = value;
            if (v != "anomalous" && v != "all") {
                return bad("anomalous or all");
            }
            settings.options.segment = v == "all" ? loupe::Segment::All : loupe::Segment::Anomalous;
        } else if (arg == "--gray-bits") {
            const std::optional<long> n = parse_count(value, 10, 16);
            if (!n || *n % 2 != 0) {
                return bad("10, 12, 14 or 16");
            }
            settings.gray_bits = static_cast<int>(*n);
        } else if (arg == "--log-level") {
            const std::optional<loupe::LogLevel> level = loupe::parse_log_level(value);
            if (!level) {
                return bad("off, error, warn, info, debug or trace");
            }
            log_level = *level;
        } else if (arg == "--json") {
            settings.json = true;
        } else if (arg.size() > 2 && arg.compare(0, 2, "--") == 0) {
            std::fprintf(stderr, "error: unknown option %s\n", arg.c_str());
            return usage(argv[0]);
        } else {
            images.push_back(arg);
        }
    }
    if (images.empty()) {
        return usage(argv[0]);
    }
    try {
        loupe::check_api_version();
        // Before the engine: its construction logs which post-processing backend it chose (info level). The
        // handler may run on any thread; one fprintf per message keeps lines whole.
        loupe::set_log_callback(log_level, [](loupe::LogLevel level, std::string_view target, std::string_view text) {
            std::fprintf(stderr, "loupe: %s %.*s: %.*s\n", loupe::name(level), static_cast<int>(target.size()),
                         target.data(), static_cast<int>(text.size()), text.data());
        });
        // One engine per process, shared by every customer and camera thread; one session per customer/thread.
        const std::string config = argv[1];
        const loupe::Engine engine = config == "-" ? loupe::Engine::create_default() : loupe::Engine::from_file(config);
        std::printf("loupe %s, classes:", loupe::version().c_str());
        for (const std::string& c : engine.classes()) {
            std::printf(" %s", c.c_str());
        }
        std::printf("\n");
        if (log_level >= loupe::LogLevel::Info) {
            const loupe::EngineInfo info = engine.info();
            std::fprintf(stderr,
                         "loupe: info vision_cell: engine model=%s (%s) bank=%s (%s) postprocessor=%s input=%ux%u "
                         "image_threshold=%g pixel_threshold=%g segment=%s\n",
                         info.model_name.c_str(), info.model_id.c_str(), info.bank_name.c_str(), info.bank_id.c_str(),
                         info.postprocessor.c_str(), info.input_width, info.input_height, info.image_threshold,
                         info.pixel_threshold, loupe::name(info.segment));
        }

        std::vector<Customer> customers;
        if (profiles.empty()) {
            customers.push_back(Customer{"", loupe::Session(engine)});
        }
        for (const auto& [name, source] : profiles) {
            // The session holds its profile: the Profile object may go out of scope right after.
            const loupe::Profile profile = customer_profile(engine, name, source, settings.gray_bits);
            Customer customer{name, loupe::Session(engine)};
            customer.session.set_profile(&profile);
            customers.push_back(std::move(customer));
        }
        if (mutual > 0) {
            for (Customer& c : customers) {
                c.session.set_mutual(static_cast<uint32_t>(mutual));
            }
        }
        settings.extended = !profiles.empty() || mutual > 0;

        int failed = 0;
        for (const std::string& path : images) {
            try {
                const cv::Mat image = read_image(path);
                for (Customer& c : customers) {
                    inspect_image(c, image, path, settings);
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
