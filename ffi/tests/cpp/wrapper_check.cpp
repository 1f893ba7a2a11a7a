// Exercises include/loupe.hpp and include/loupe_opencv.hpp for ffi/tests/cpp_wrapper.rs, which compiles it
// (-std=c++17 -Wall -Wextra -Werror -pedantic), runs one subcommand per test and compares what it prints with the
// Rust API. Output: one record per line, tab-separated, `KIND\tkey=value\t...`; values never hold tabs.
//
//   wrapper_check formats CONFIG IMAGE...       cv::Mat types and ROIs against packed RGB8 / GRAY8 views; refusals
//   wrapper_check options CONFIG IMAGE_T PIXEL_T AREA IMAGE...   per-call options, rethreshold, skip, classes
//   wrapper_check batch CONFIG IMAGE...         inspect_batch with options: per-image statuses, call-level throws
//   wrapper_check log CONFIG                    the log callback (CONFIG: the CPU backend, which is logged)
//   wrapper_check json CONFIG OUT_DIR IMAGE     Result::to_json into OUT_DIR/<name>.json and OUT_DIR/unnamed.json
//   wrapper_check info CONFIG IMAGE             Engine::info, Engine::create_default
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "loupe.hpp"
#include "loupe_opencv.hpp"

namespace {

/// One output record.
class Line {
public:
    explicit Line(const std::string& kind) : text_(kind) {}
    template <typename T>
    Line& kv(const std::string& key, const T& value) {
        text_ += "\t" + key + "=" + to_text(value);
        return *this;
    }
    ~Line() { std::printf("%s\n", text_.c_str()); }
    Line(const Line&) = delete;
    Line& operator=(const Line&) = delete;

private:
    static std::string to_text(const std::string& v) { return v; }
    static std::string to_text(const char* v) { return v; }
    static std::string to_text(float v);
    static std::string to_text(bool v) { return v ? "1" : "0"; }
    template <typename T>
    static std::string to_text(const T& v) {
        return std::to_string(v);
    }
    std::string text_;
};

std::string exact(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(v));
    return buf;
}

std::string Line::to_text(float v) { return exact(v); }

/// FNV-1a 64 of `bytes` bytes, as 16 hex digits (the Rust test computes the same).
std::string fnv(const void* data, size_t bytes) {
    uint64_t h = 0xcbf29ce484222325ull;
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < bytes; ++i) {
        h = (h ^ p[i]) * 0x100000001b3ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

/// The hash of a Mat's pixels row by row (ROIs and padded rows: only the pixels).
std::string mat_hash(const cv::Mat& m) {
    std::vector<uint8_t> packed;
    const size_t row = static_cast<size_t>(m.cols) * m.elemSize();
    for (int y = 0; y < m.rows; ++y) {
        const uint8_t* p = m.ptr<uint8_t>(y);
        packed.insert(packed.end(), p, p + row);
    }
    return fnv(packed.data(), packed.size());
}

std::string name_of(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

/// The mask of `r` through loupe::mask_mat: its hash, checking the Mat's type and size against the MapView.
std::string mask_hash(const loupe::Result& r) {
    const cv::Mat mask = loupe::mask_mat(r);
    const loupe::MapView<uint8_t> view = r.mask();
    if (mask.type() != CV_8UC1 || mask.cols != static_cast<int>(view.width) ||
        mask.rows != static_cast<int>(view.height) || mask.data != view.data) {
        throw std::runtime_error("mask_mat does not wrap the result's mask");
    }
    return mat_hash(mask);
}

/// The image as packed RGB bytes, copied pixel by pixel from a BGR Mat (the reference, independent of OpenCV).
std::vector<uint8_t> packed_rgb(const cv::Mat& bgr) {
    std::vector<uint8_t> out;
    for (int y = 0; y < bgr.rows; ++y) {
        for (int x = 0; x < bgr.cols; ++x) {
            const cv::Vec3b px = bgr.at<cv::Vec3b>(y, x);
            out.insert(out.end(), {px[2], px[1], px[0]});
        }
    }
    return out;
}

/// The green channel as packed gray bytes (the Rust test makes the same gray image).
std::vector<uint8_t> packed_green(const cv::Mat& bgr) {
    std::vector<uint8_t> out;
    for (int y = 0; y < bgr.rows; ++y) {
        for (int x = 0; x < bgr.cols; ++x) {
            out.push_back(bgr.at<cv::Vec3b>(y, x)[1]);
        }
    }
    return out;
}

cv::Mat read_bgr(const std::string& path) {
    cv::Mat m = cv::imread(path, cv::IMREAD_COLOR);
    if (m.empty()) {
        throw std::runtime_error("cannot read " + path);
    }
    return m;
}

/// `m` placed inside a larger Mat filled with `fill`: the ROI has the larger Mat's (padded) step.
cv::Mat padded_roi(const cv::Mat& m, const cv::Scalar& fill) {
    cv::Mat big(m.rows + 7, m.cols + 11, m.type(), fill);
    const cv::Rect rect(5, 3, m.cols, m.rows);
    m.copyTo(big(rect));
    return big(rect);
}

void print_inspection(loupe::Session& session, const std::string& image, const std::string& family,
                      const std::string& variant, const cv::Mat* mat, const LoupeImageView& view) {
    const loupe::Result r = session.inspect(view);
    {
        Line line("format");
        line.kv("image", image).kv("family", family).kv("variant", variant);
        line.kv("mat", mat != nullptr ? cv::typeToString(mat->type()) : std::string("none"));
        line.kv("step", static_cast<unsigned long long>(view.stride)).kv("format", view.format);
        line.kv("score", r.score()).kv("mask", mask_hash(r)).kv("regions", r.regions().size());
    }
    if (mat == nullptr) {
        // The reference views: the maps through the OpenCV wrappers too.
        const cv::Mat anomaly = loupe::anomaly_map_mat(r);
        const cv::Mat types = loupe::type_map_mat(r);
        Line maps("maps");
        maps.kv("image", image).kv("family", family);
        maps.kv("anomaly_type", cv::typeToString(anomaly.type())).kv("type_type", cv::typeToString(types.type()));
        maps.kv("width", anomaly.cols).kv("height", anomaly.rows);
        maps.kv("anomaly", mat_hash(anomaly)).kv("types", mat_hash(types));
        maps.kv("borrowed", anomaly.data == reinterpret_cast<const uint8_t*>(r.anomaly_map().data) &&
                                types.data == reinterpret_cast<const uint8_t*>(r.type_map().data));
    }
}

void refusal(const std::string& what, const std::function<LoupeImageView()>& make) {
    Line line("refused");
    line.kv("case", what);
    try {
        (void)make();
        line.kv("status", "none");
    } catch (const loupe::Error& e) {
        line.kv("status", loupe_status_name(static_cast<int32_t>(e.status()))).kv("message", e.what());
    }
}

int formats(const std::string& config, const std::vector<std::string>& images) {
    const loupe::Engine engine = loupe::Engine::from_file(config);
    loupe::Session session(engine);
    for (const std::string& path : images) {
        const std::string name = name_of(path);
        const cv::Mat bgr = read_bgr(path);
        const uint32_t w = static_cast<uint32_t>(bgr.cols), h = static_cast<uint32_t>(bgr.rows);

        const std::vector<uint8_t> rgb_bytes = packed_rgb(bgr);
        print_inspection(session, name, "color", "rgb8-view", nullptr,
                         loupe::view(rgb_bytes.data(), w, h, 0, loupe::PixelFormat::Rgb8));
        print_inspection(session, name, "color", "bgr", &bgr, loupe::view_of(bgr));
        cv::Mat rgb, bgra, rgba;
        cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
        print_inspection(session, name, "color", "rgb", &rgb, loupe::view_of(rgb, loupe::ChannelOrder::Rgb));
        cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
        bgra.forEach<cv::Vec4b>([](cv::Vec4b& px, const int*) { px[3] = static_cast<uint8_t>(px[0] ^ 0x5a); });
        print_inspection(session, name, "color", "bgra", &bgra, loupe::view_of(bgra));
        cv::cvtColor(bgr, rgba, cv::COLOR_BGR2RGBA);
        print_inspection(session, name, "color", "rgba", &rgba, loupe::view_of(rgba, loupe::ChannelOrder::Rgb));
        const cv::Mat roi = padded_roi(bgr, cv::Scalar(255, 0, 255));
        print_inspection(session, name, "color", "bgr-roi", &roi, loupe::view_of(roi));
        const cv::Mat bgra_roi = padded_roi(bgra, cv::Scalar(0, 255, 0, 9));
        print_inspection(session, name, "color", "bgra-roi", &bgra_roi, loupe::view_of(bgra_roi));

        const std::vector<uint8_t> gray_bytes = packed_green(bgr);
        print_inspection(session, name, "gray", "gray8-view", nullptr,
                         loupe::view(gray_bytes.data(), w, h, 0, loupe::PixelFormat::Gray8));
        cv::Mat gray;
        cv::extractChannel(bgr, gray, 1);
        print_inspection(session, name, "gray", "gray", &gray, loupe::view_of(gray));
        cv::Mat g12, g16;
        gray.convertTo(g12, CV_16U, 16.0);  // g << 4: 12 significant bits
        print_inspection(session, name, "gray", "gray16-12bits", &g12, loupe::view_of(g12, 12));
        gray.convertTo(g16, CV_16U, 256.0);  // g << 8
        print_inspection(session, name, "gray", "gray16-16bits", &g16, loupe::view_of(g16));
        const cv::Mat gray_roi = padded_roi(gray, cv::Scalar(200));
        print_inspection(session, name, "gray", "gray-roi", &gray_roi, loupe::view_of(gray_roi));
        const cv::Mat g12_roi = padded_roi(g12, cv::Scalar(4095));
        print_inspection(session, name, "gray", "gray16-12bits-roi", &g12_roi, loupe::view_of(g12_roi, 12));
    }
    const cv::Mat f32(8, 8, CV_32FC1, cv::Scalar(0.5));
    const cv::Mat c2(8, 8, CV_8UC2, cv::Scalar(1, 2));
    const cv::Mat c16(8, 8, CV_16UC3, cv::Scalar(1, 2, 3));
    const cv::Mat g16(8, 8, CV_16UC1, cv::Scalar(100));
    const int sizes[3] = {2, 3, 4};
    const cv::Mat cube(3, sizes, CV_8UC1, cv::Scalar(0));
    const cv::Mat empty;
    refusal("CV_32FC1", [&] { return loupe::view_of(f32); });
    refusal("CV_8UC2", [&] { return loupe::view_of(c2); });
    refusal("CV_16UC3", [&] { return loupe::view_of(c16); });
    refusal("bits=11", [&] { return loupe::view_of(g16, 11); });
    refusal("3-dims", [&] { return loupe::view_of(cube); });
    refusal("empty", [&] { return loupe::view_of(empty); });
    return 0;
}

/// Parses a float argument exactly (the Rust test prints shortest round-trip values).
float number(const char* text) {
    char* end = nullptr;
    const float v = std::strtof(text, &end);
    if (end == text || *end != '\0') {
        throw std::runtime_error(std::string("not a number: ") + text);
    }
    return v;
}

std::string thresholds_of(const loupe::Result& r) {
    const std::pair<float, float> t = r.thresholds();
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g,%.9g", static_cast<double>(t.first), static_cast<double>(t.second));
    return buf;
}

void describe(Line& line, const std::string& prefix, const loupe::Result& r) {
    line.kv(prefix + "score", r.score()).kv(prefix + "label", r.is_anomalous() ? "anomalous" : "normal");
    line.kv(prefix + "mask", mask_hash(r)).kv(prefix + "regions", r.regions().size());
    line.kv(prefix + "thresholds", thresholds_of(r));
}

std::string status_of(const std::function<void()>& call) {
    try {
        call();
        return "none";
    } catch (const loupe::Error& e) {
        return std::string(loupe_status_name(static_cast<int32_t>(e.status()))) + ":" + e.what();
    }
}

int options(const std::string& config, float image_t, float pixel_t, uint32_t area,
            const std::vector<std::string>& images) {
    const loupe::Engine engine = loupe::Engine::from_file(config);
    loupe::Session session(engine);
    loupe::InspectOptions o;
    o.image_threshold = image_t;
    o.pixel_threshold = pixel_t;
    o.min_region_area = area;
    std::vector<cv::Mat> mats;
    for (const std::string& path : images) {
        mats.push_back(read_bgr(path));
    }
    for (size_t i = 0; i < images.size(); ++i) {
        const LoupeImageView view = loupe::view_of(mats[i]);
        const loupe::Result plain = session.inspect(view);
        const loupe::Result per_call = session.inspect(view, o);
        const loupe::Result again = plain.rethreshold(o);
        const loupe::Result unchanged = session.inspect(view, loupe::InspectOptions{});
        Line line("options");
        line.kv("image", name_of(images[i]));
        describe(line, "plain_", plain);
        describe(line, "call_", per_call);
        describe(line, "re_", again);
        describe(line, "none_", unchanged);
    }
    // With a profile for the call (golden samples from the first two images): options vs rethreshold again, on the
    // golden scale (thresholds near the profile's own: 0.5 for the normalised reference evidence).
    const loupe::Profile profile =
        loupe::Profile::create(engine, {loupe::view_of(mats[0]), loupe::view_of(mats[1])}, loupe::ProfileOptions{});
    loupe::InspectOptions golden;
    golden.image_threshold = 0.0f;
    golden.segment = loupe::Segment::All;
    golden.pixel_threshold = 0.45f;
    for (size_t i = 0; i < images.size(); ++i) {
        const LoupeImageView view = loupe::view_of(mats[i]);
        const loupe::Result per_call = session.inspect(view, profile, golden);
        const loupe::Result again = session.inspect(view, profile).rethreshold(golden);
        Line line("profile_options");
        line.kv("image", name_of(images[i])).kv("mode", loupe::name(per_call.evidence().mode));
        describe(line, "call_", per_call);
        describe(line, "re_", again);
    }
    // Skipped maps: refused, not dangling; the mask and regions stay.
    loupe::InspectOptions skip;
    skip.keep_anomaly_map = false;
    skip.keep_type_map = false;
    const LoupeImageView view = loupe::view_of(mats[0]);
    const loupe::Result skipped = session.inspect(view, skip);
    const loupe::Result full = session.inspect(view);
    Line("skip")
        .kv("anomaly_map", status_of([&] { (void)loupe::anomaly_map_mat(skipped); }))
        .kv("type_map", status_of([&] { (void)skipped.type_map(); }))
        .kv("rethreshold", status_of([&] { (void)skipped.rethreshold(loupe::InspectOptions{}); }))
        .kv("same_mask", mask_hash(skipped) == mask_hash(full))
        .kv("same_score", skipped.score() == full.score());
    // A vocabulary subset for one call; refused by rethreshold.
    loupe::InspectOptions narrow;
    narrow.classes = std::vector<std::string>{"scratch"};
    for (size_t i = 0; i < images.size(); ++i) {
        const loupe::Result r = session.inspect(loupe::view_of(mats[i]), narrow);
        std::string classes;
        for (const std::string& c : r.classes()) {
            classes += (classes.empty() ? "" : ",") + c;
        }
        Line("classes")
            .kv("image", name_of(images[i]))
            .kv("classes", classes)
            .kv("score", r.score())
            .kv("mask", mask_hash(r))
            .kv("type", r.image_type());
    }
    Line("classes_refused")
        .kv("rethreshold", status_of([&] { (void)full.rethreshold(narrow); }))
        .kv("unknown", status_of([&] {
                loupe::InspectOptions unknown;
                unknown.classes = std::vector<std::string>{"no-such-defect"};
                (void)session.inspect(view, unknown);
            }));
    return 0;
}

int batch(const std::string& config, const std::vector<std::string>& images) {
    const loupe::Engine engine = loupe::Engine::from_file(config);
    loupe::Session session(engine);
    std::vector<cv::Mat> mats;
    std::vector<LoupeImageView> views;
    for (const std::string& path : images) {
        mats.push_back(read_bgr(path));
    }
    for (const cv::Mat& m : mats) {
        views.push_back(loupe::view_of(m));
    }
    views[1].format = 0;  // corrupt: no such format
    const std::vector<loupe::BatchItem> items = session.inspect_batch(views, loupe::InspectOptions{});
    for (size_t i = 0; i < items.size(); ++i) {
        Line line("batch");
        line.kv("index", i).kv("status", loupe_status_name(static_cast<int32_t>(items[i].status)));
        line.kv("ok", items[i].ok()).kv("has_result", items[i].result.has_value());
        line.kv("score", items[i].result ? items[i].result->score() : -1.0f).kv("error", items[i].error);
    }
    // Every view refused (with one status, or two): still per image, no throw.
    for (const char* what : {"format", "null-data", "mixed"}) {
        std::vector<LoupeImageView> bad = views;
        for (size_t i = 0; i < bad.size(); ++i) {
            const bool null_data = std::string(what) == "null-data" || (std::string(what) == "mixed" && i % 2 == 1);
            if (null_data) {
                bad[i].data = nullptr;
            } else {
                bad[i].format = 0;
            }
        }
        Line line("batch_all_bad");
        line.kv("case", what);
        try {
            const std::vector<loupe::BatchItem> all = session.inspect_batch(bad, loupe::InspectOptions{});
            std::string statuses;
            for (const loupe::BatchItem& item : all) {
                statuses += std::string(statuses.empty() ? "" : ",") +
                            loupe_status_name(static_cast<int32_t>(item.status)) + (item.result ? "+result" : "");
            }
            line.kv("threw", false).kv("statuses", statuses).kv("error0", all[0].error).kv("error1", all[1].error);
        } catch (const loupe::Error& e) {
            line.kv("threw", true).kv("message", e.what());
        }
    }
    // Per-call options reach every image of the batch.
    loupe::InspectOptions strict;
    strict.image_threshold = 1.0f;
    views[1] = loupe::view_of(mats[1]);
    for (const loupe::BatchItem& item : session.inspect_batch(views, strict)) {
        Line("batch_options")
            .kv("status", loupe_status_name(static_cast<int32_t>(item.status)))
            .kv("image_threshold", item.result ? item.result->thresholds().first : -1.0f);
    }
    // Failures of the call itself throw.
    loupe::InspectOptions unknown;
    unknown.classes = std::vector<std::string>{"no-such-defect"};
    Line("batch_throw").kv("case", "unknown-word").kv("status", status_of([&] {
        (void)session.inspect_batch(views, unknown);
    }));
    loupe::Session mutual(engine);
    mutual.set_mutual(4);
    Line("batch_throw").kv("case", "mutual-too-small").kv("status", status_of([&] {
        (void)mutual.inspect_batch({views[0], views[2]}, loupe::InspectOptions{});
    }));
    loupe::Session taken = std::move(session);
    Line("batch_throw").kv("case", "moved-from").kv("status", status_of([&] {
        (void)session.inspect_batch(views, loupe::InspectOptions{});  // a moved-from session, on purpose
    }));
    // The batch without options still returns plain results (all views valid).
    Line("batch_plain").kv("results", taken.inspect_batch(views).size());
    return 0;
}

/// What the handlers saw, from any thread.
struct Seen {
    std::mutex mutex;
    std::vector<std::pair<std::string, std::pair<std::string, std::string>>> messages;  // level, target, message
    std::atomic<int> calls{0};
};

Seen& seen() {
    static Seen s;
    return s;
}

void record(loupe::LogLevel level, std::string_view target, std::string_view message) {
    seen().calls++;
    const std::lock_guard<std::mutex> lock(seen().mutex);
    seen().messages.emplace_back(loupe::name(level), std::make_pair(std::string(target), std::string(message)));
}

std::vector<std::pair<std::string, std::pair<std::string, std::string>>> take() {
    const std::lock_guard<std::mutex> lock(seen().mutex);
    return std::exchange(seen().messages, {});
}

int log_callback(const std::string& config) {
    loupe::set_log_callback(loupe::LogLevel::Info, record);
    { const loupe::Engine e = loupe::Engine::from_file(config); }
    for (const auto& [level, m] : take()) {
        Line("log").kv("phase", "info").kv("level", level).kv("target", m.first).kv("message", m.second);
    }
    loupe::set_log_callback(loupe::LogLevel::Warn, record);
    { const loupe::Engine e = loupe::Engine::from_file(config); }
    int verbose = 0;
    for (const auto& entry : take()) {
        verbose += entry.first != "warn" && entry.first != "error";
    }
    Line("log_count").kv("phase", "warn").kv("more_verbose_than_warn", verbose);
    // A handler that throws: swallowed by the wrapper's trampoline, the engine is built.
    std::atomic<int> thrown{0};
    loupe::set_log_callback(loupe::LogLevel::Info, [&](loupe::LogLevel, std::string_view, std::string_view) {
        ++thrown;
        throw std::runtime_error("a handler that throws");
    });
    bool built = false;
    {
        const loupe::Engine e = loupe::Engine::from_file(config);
        built = !e.classes().empty();
    }
    Line("log_throw").kv("thrown", thrown.load()).kv("engine_built", built);
    // Removed (explicitly, then by an empty handler): nothing more arrives.
    loupe::set_log_callback(loupe::LogLevel::Info, record);
    loupe::clear_log_callback();
    const int before = seen().calls.load();
    { const loupe::Engine e = loupe::Engine::from_file(config); }
    loupe::set_log_callback(loupe::LogLevel::Info, record);
    loupe::set_log_callback(loupe::LogLevel::Info, loupe::LogHandler{});
    { const loupe::Engine e = loupe::Engine::from_file(config); }
    Line("log_count").kv("phase", "cleared").kv("delivered", seen().calls.load() - before);
    Line("log_levels")
        .kv("parsed", loupe::parse_log_level("debug") == loupe::LogLevel::Debug)
        .kv("unknown", !loupe::parse_log_level("loud").has_value());
    return 0;
}

int json(const std::string& config, const std::string& out_dir, const std::string& path) {
    const loupe::Engine engine = loupe::Engine::from_file(config);
    loupe::Session session(engine);
    const cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
    const loupe::Result r = session.inspect(loupe::view_of(image));
    const std::string named = r.to_json(name_of(path));
    const std::string unnamed = r.to_json();
    std::ofstream(out_dir + "/" + name_of(path) + ".json") << named;
    std::ofstream(out_dir + "/unnamed.json") << unnamed;
    Line("json").kv("length", named.size()).kv("nul_free", named.find('\0') == std::string::npos).kv("score", r.score());
    return 0;
}

void print_info(const std::string& engine_name, const loupe::EngineInfo& i) {
    const std::vector<std::pair<std::string, std::string>> fields = {
        {"model_name", i.model_name},
        {"model_id", i.model_id},
        {"bank_name", i.bank_name},
        {"bank_id", i.bank_id},
        {"postprocessor", i.postprocessor},
        {"input", std::to_string(i.input_width) + "x" + std::to_string(i.input_height)},
        {"layers", std::to_string(i.layers)},
        {"feature_dim", std::to_string(i.feature_dim)},
        {"image_threshold", exact(i.image_threshold)},
        {"pixel_threshold", exact(i.pixel_threshold)},
        {"min_region_area", std::to_string(i.min_region_area)},
        {"segment", loupe::name(i.segment)},
        {"class_count", std::to_string(i.class_count)},
        {"has_default_profile", i.has_default_profile ? "1" : "0"},
    };
    for (const auto& [key, value] : fields) {
        Line("info").kv("engine", engine_name).kv("key", key).kv("value", value);
    }
}

int info(const std::string& config, const std::string& path) {
    const loupe::Engine fixture = loupe::Engine::from_file(config);
    print_info("fixture", fixture.info());
    const loupe::Engine embedded = loupe::Engine::create_default();
    const loupe::EngineInfo i = embedded.info();
    print_info("default", i);
    Line("default_classes").kv("count", embedded.classes().size()).kv("info_count", i.class_count);
    loupe::Session session(embedded);
    const cv::Mat image = cv::imread(path, cv::IMREAD_UNCHANGED);
    const loupe::Result r = session.inspect(loupe::view_of(image));
    Line("default").kv("image", name_of(path)).kv("mat", cv::typeToString(image.type())).kv("score", r.score());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        loupe::check_api_version();
        const std::vector<std::string> args(argv + 1, argv + argc);
        if (args.size() >= 2) {
            const std::string& command = args[0];
            const std::string& config = args[1];
            const std::vector<std::string> rest(args.begin() + 2, args.end());
            if (command == "formats" && !rest.empty()) {
                return formats(config, rest);
            }
            if (command == "options" && rest.size() >= 5) {
                return options(config, number(rest[0].c_str()), number(rest[1].c_str()),
                               static_cast<uint32_t>(std::stoul(rest[2])), {rest.begin() + 3, rest.end()});
            }
            if (command == "batch" && rest.size() >= 3) {
                return batch(config, rest);
            }
            if (command == "log" && rest.empty()) {
                return log_callback(config);
            }
            if (command == "json" && rest.size() == 2) {
                return json(config, rest[0], rest[1]);
            }
            if (command == "info" && rest.size() == 1) {
                return info(config, rest[0]);
            }
        }
        std::fprintf(stderr, "usage: see the comment at the top of wrapper_check.cpp\n");
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
