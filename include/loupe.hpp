// Loupe C++17 wrapper: header-only RAII classes over the C API (loupe.h), with exceptions.
//
//   loupe::Engine engine = loupe::Engine::from_file("loupe.toml");   // share between threads
//   loupe::Session session(engine);                                  // one per thread
//   loupe::Result r = session.inspect(loupe::view(pixels, width, height, stride, loupe::PixelFormat::Bgr8));
//   // (a cv::Mat: loupe::view_of(mat) from loupe_opencv.hpp maps its type, step and ROI)
//   if (r.is_anomalous()) { for (const loupe::Region& reg : r.regions()) { ... } }
//
//   // One engine, one profile per customer (golden samples from good parts, or a profile file):
//   loupe::Profile acme = loupe::Profile::create(engine, good_views, {"acme"});
//   loupe::Profile zenith = loupe::Profile::load(engine, "zenith.safetensors");
//   session.set_profile(&acme);                       // from now on; nullptr = the engine's default
//   loupe::Result z = session.inspect(view, zenith);  // this call only
//
//   // Per-call options, and new thresholds on a kept result without running the model again:
//   loupe::InspectOptions options;
//   options.pixel_threshold = 2.5f;
//   loupe::Result s = session.inspect(view, options);
//   options.pixel_threshold = 3.5f;
//   loupe::Result stricter = s.rethreshold(options);  // maps kept by `s`, new mask and regions
//   std::string json = s.to_json("part-7.png");     // the document `loupe inspect` writes
//
//   // Loupe's log messages (backend choice, GPU fallback) into the host's logger:
//   loupe::set_log_callback(loupe::LogLevel::Warn, [](loupe::LogLevel, std::string_view target,
//                                                     std::string_view message) { ... });
//   auto items = session.inspect_batch(views, {});   // a status per image: a bad view fails only its item
//   loupe::Engine fallback = loupe::Engine::create_default();  // the embedded model, no configuration
//
// OpenCV: loupe_opencv.hpp (loupe::view_of(mat), result maps as cv::Mat), also header-only.
//
// Classes own one handle each and are move-only; the destructor releases it. A failed call throws loupe::Error,
// which carries the LoupeStatus and loupe_last_error()'s message. Thread-safety is that of the C functions
// (see loupe.h): Engine, Profile and Result may be used from any thread, a Session from one thread at a time.
// Guide: docs/c-api.md.
#ifndef LOUPE_HPP
#define LOUPE_HPP

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loupe.h"

namespace loupe {

/// A failed Loupe call: the status and the library's message (file, field, expected vs found).
class Error : public std::runtime_error {
public:
    Error(LoupeStatus status, const std::string& message)
        : std::runtime_error(std::string(loupe_status_name(static_cast<int32_t>(status))) + ": " + message),
          status_(status) {}

    /// The status code of the failed call.
    LoupeStatus status() const noexcept { return status_; }

private:
    LoupeStatus status_;
};

namespace detail {

/// Throws loupe::Error for any status but LOUPE_STATUS_OK.
inline void check(LoupeStatus status) {
    if (status != LOUPE_STATUS_OK) {
        throw Error(status, loupe_last_error());
    }
}

/// Owns one handle; `Destroy` releases it. Move-only.
template <typename T, LoupeStatus (*Destroy)(T*)>
class Handle {
public:
    Handle() noexcept = default;
    explicit Handle(T* raw) noexcept : raw_(raw) {}
    Handle(const Handle&) = delete;
    Handle& operator=(const Handle&) = delete;
    Handle(Handle&& other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
    Handle& operator=(Handle&& other) noexcept {
        if (this != &other) {
            reset();
            raw_ = std::exchange(other.raw_, nullptr);
        }
        return *this;
    }
    ~Handle() { reset(); }

    T* get() const noexcept { return raw_; }
    explicit operator bool() const noexcept { return raw_ != nullptr; }

private:
    void reset() noexcept {
        if (raw_ != nullptr) {
            // Destroy only fails for a handle that is not live, which this class never holds.
            (void)Destroy(raw_);
            raw_ = nullptr;
        }
    }
    T* raw_ = nullptr;
};

}  // namespace detail

/// Pixel layouts of an image view (the LOUPE_FORMAT_* values).
enum class PixelFormat : uint32_t {
    Gray8 = LOUPE_FORMAT_GRAY8,
    Rgb8 = LOUPE_FORMAT_RGB8,
    Bgr8 = LOUPE_FORMAT_BGR8,
    Rgba8 = LOUPE_FORMAT_RGBA8,
    Bgra8 = LOUPE_FORMAT_BGRA8,    ///< B, G, R, A (OpenCV's CV_8UC4); alpha ignored
    Bgrx8 = LOUPE_FORMAT_BGRX8,    ///< B, G, R and one unused byte
    Rgbx8 = LOUPE_FORMAT_RGBX8,    ///< R, G, B and one unused byte
    Gray10 = LOUPE_FORMAT_GRAY10,  ///< 16-bit words (native order) holding 10 significant bits
    Gray12 = LOUPE_FORMAT_GRAY12,  ///< 16-bit words holding 12 significant bits
    Gray14 = LOUPE_FORMAT_GRAY14,  ///< 16-bit words holding 14 significant bits
    Gray16 = LOUPE_FORMAT_GRAY16,  ///< 16-bit words, all 16 bits significant
};

/// Formats of configuration text (the LOUPE_CONFIG_* values).
enum class ConfigFormat : uint32_t {
    Toml = LOUPE_CONFIG_TOML,
    Json = LOUPE_CONFIG_JSON,
    Yaml = LOUPE_CONFIG_YAML,
};

/// A view of caller pixels (no copy): `height` rows `stride` bytes apart (0 = packed). For a cv::Mat, prefer
/// loupe::view_of(mat) (loupe_opencv.hpp), which picks the format from the Mat's type and refuses the others.
inline LoupeImageView view(const uint8_t* data, uint32_t width, uint32_t height, size_t stride, PixelFormat format) {
    return LoupeImageView{data, width, height, stride, static_cast<uint32_t>(format)};
}

/// A read-only map owned by a Result: `width * height` values, row-major.
template <typename T>
struct MapView {
    const T* data = nullptr;
    uint32_t width = 0;
    uint32_t height = 0;

    /// Value at column `x`, row `y` (unchecked).
    T at(uint32_t x, uint32_t y) const { return data[static_cast<size_t>(y) * width + x]; }
    size_t size() const { return static_cast<size_t>(width) * height; }
};

/// A connected region of the mask (output-map pixels).
struct Region {
    uint32_t x = 0, y = 0, width = 0, height = 0;
    uint32_t area = 0;
    uint32_t type_index = 0;  ///< index into Result::classes()
    std::string type;         ///< name of that defect type
    float mean_score = 0.0f;
    float max_score = 0.0f;
};

/// Which images get a mask and regions (the LOUPE_SEGMENT_* values; `postprocess.segment`).
enum class Segment : uint32_t {
    Anomalous = LOUPE_SEGMENT_ANOMALOUS,  ///< only images labelled anomalous (the default)
    All = LOUPE_SEGMENT_ALL,              ///< every image, from the pixel threshold alone
};

/// Its name: "anomalous" or "all" (as in the configuration).
inline const char* name(Segment segment) noexcept { return segment == Segment::All ? "all" : "anomalous"; }

/// Options of one inspection (Session::inspect, Session::inspect_batch) or of a re-thresholding
/// (Result::rethreshold), as LoupeInspectOptions: an empty optional keeps the engine's configuration (or the
/// profile's calibration), so a default-constructed InspectOptions changes nothing.
struct InspectOptions {
    std::optional<float> image_threshold;     ///< image-score threshold, on the scale of the result's mode
    std::optional<float> pixel_threshold;     ///< anomaly-map threshold, on the scale of Result::map_range()
    std::optional<uint32_t> min_region_area;  ///< smallest region kept, in pixels (at least 1)
    std::optional<Segment> segment;           ///< which images get a mask and regions
    /// Defect words to look for: a subset of the engine's (or profile's) vocabulary; the result's classes are
    /// "normal" and these, in this order. Not for Result::rethreshold (a vocabulary needs the model).
    std::optional<std::vector<std::string>> classes;
    bool keep_anomaly_map = true;  ///< false: free the float maps once mask and regions are made (no rethreshold)
    bool keep_type_map = true;     ///< false: free the type map once regions are made (no rethreshold)
};

namespace detail {

/// An InspectOptions as the C struct, for the duration of one call: holds the array of class-name pointers (the
/// names themselves are the InspectOptions' strings, which must outlive this object). Not copyable: the struct
/// points into this object.
class CInspectOptions {
public:
    explicit CInspectOptions(const InspectOptions& o) {
        c_.struct_size = sizeof c_;
        if (o.image_threshold) {
            c_.set |= LOUPE_OPTION_IMAGE_THRESHOLD;
            c_.image_threshold = *o.image_threshold;
        }
        if (o.pixel_threshold) {
            c_.set |= LOUPE_OPTION_PIXEL_THRESHOLD;
            c_.pixel_threshold = *o.pixel_threshold;
        }
        if (o.min_region_area) {
            c_.set |= LOUPE_OPTION_MIN_REGION_AREA;
            c_.min_region_area = *o.min_region_area;
        }
        if (o.segment) {
            c_.set |= LOUPE_OPTION_SEGMENT;
            c_.segment = static_cast<uint32_t>(*o.segment);
        }
        if (o.classes) {
            c_.set |= LOUPE_OPTION_CLASSES;
            names_.reserve(o.classes->size());
            for (const std::string& word : *o.classes) {
                names_.push_back(word.c_str());
            }
            c_.classes = names_.data();
            c_.class_count = names_.size();
        }
        if (!o.keep_anomaly_map) {
            c_.skip |= LOUPE_SKIP_ANOMALY_MAP;
        }
        if (!o.keep_type_map) {
            c_.skip |= LOUPE_SKIP_TYPE_MAP;
        }
    }
    CInspectOptions(const CInspectOptions&) = delete;
    CInspectOptions& operator=(const CInspectOptions&) = delete;

    const LoupeInspectOptions* get() const noexcept { return &c_; }

private:
    std::vector<const char*> names_;
    LoupeInspectOptions c_{};
};

}  // namespace detail

/// What a result's score rests on (the LOUPE_MODE_* values).
enum class ScoringMode : uint32_t {
    Text = LOUPE_MODE_TEXT,      ///< text evidence only
    Golden = LOUPE_MODE_GOLDEN,  ///< against a profile's golden samples
    Mutual = LOUPE_MODE_MUTUAL,  ///< against other images (the batch, or the session's window)
};

/// Its name: "text", "golden" or "mutual".
inline const char* name(ScoringMode mode) noexcept {
    switch (mode) {
        case ScoringMode::Golden:
            return "golden";
        case ScoringMode::Mutual:
            return "mutual";
        case ScoringMode::Text:
            break;
    }
    return "text";
}

/// Which evidence a result rests on (LoupeEvidence).
struct Evidence {
    ScoringMode mode = ScoringMode::Text;
    float text_score = 0.0f;               ///< the text evidence's image score
    std::optional<float> reference_score;  ///< the reference evidence's normalised image score, if any
    uint32_t pool = 0;                     ///< references (golden) or other images (mutual) compared with
    bool window_filling = false;           ///< mutual on, but the session's window was still filling: text only
};

/// The result of inspecting one image. Move-only; may be read from several threads at once.
class Result {
public:
    explicit Result(LoupeResult* raw) noexcept : handle_(raw) {}

    /// Image anomaly score (raw; in [0, 1] except with layer_sum fusion). Compare with thresholds().first.
    float score() const {
        float v = 0.0f;
        detail::check(loupe_result_score(get(), &v));
        return v;
    }
    /// The score on a scale where the image threshold is 0.5, in [0, 1]: comparable between modes and profiles.
    float normalized_score() const {
        float v = 0.0f;
        detail::check(loupe_result_normalized_score(get(), &v));
        return v;
    }
    /// Which evidence the score rests on: text, golden samples or other images.
    Evidence evidence() const {
        LoupeEvidence e{};
        e.struct_size = sizeof e;
        detail::check(loupe_result_evidence(get(), &e));
        Evidence out;
        out.mode = static_cast<ScoringMode>(e.mode);
        out.text_score = e.text_score;
        if (!std::isnan(e.reference_score)) {
            out.reference_score = e.reference_score;
        }
        out.pool = e.pool;
        out.window_filling = e.window_filling;
        return out;
    }
    /// The label: score above the image threshold.
    bool is_anomalous() const {
        bool v = false;
        detail::check(loupe_result_is_anomalous(get(), &v));
        return v;
    }
    /// Thresholds used: {image score, anomaly-map value}.
    std::pair<float, float> thresholds() const {
        float image = 0.0f, pixel = 0.0f;
        detail::check(loupe_result_thresholds(get(), &image, &pixel));
        return {image, pixel};
    }
    /// Most probable defect type of the whole image.
    std::string image_type() const {
        const char* v = nullptr;
        detail::check(loupe_result_image_type(get(), &v));
        return v;
    }
    /// Class names: "normal", then the defect words.
    std::vector<std::string> classes() const {
        size_t n = 0;
        detail::check(loupe_result_class_count(get(), &n));
        std::vector<std::string> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            const char* name = nullptr;
            detail::check(loupe_result_class_name(get(), i, &name));
            out.emplace_back(name);
        }
        return out;
    }
    /// Image-level probability of each class (same order as classes()).
    std::vector<float> class_probabilities() const {
        size_t n = 0;
        detail::check(loupe_result_class_count(get(), &n));
        std::vector<float> out(n);
        for (size_t i = 0; i < n; ++i) {
            detail::check(loupe_result_class_probability(get(), i, &out[i]));
        }
        return out;
    }
    /// Anomaly map, range [0, map_range()]; valid while this Result lives.
    MapView<float> anomaly_map() const {
        MapView<float> m;
        detail::check(loupe_result_anomaly_map(get(), &m.data, &m.width, &m.height));
        return m;
    }
    /// Top of the anomaly map's range: the number of feature layers for text, 1 for fused results.
    float map_range() const {
        float v = 0.0f;
        detail::check(loupe_result_map_range(get(), &v));
        return v;
    }
    /// Binary mask, 0 or 255; valid while this Result lives.
    MapView<uint8_t> mask() const {
        MapView<uint8_t> m;
        detail::check(loupe_result_mask(get(), &m.data, &m.width, &m.height));
        return m;
    }
    /// Per-pixel class index (0 outside the mask); valid while this Result lives.
    MapView<uint16_t> type_map() const {
        MapView<uint16_t> m;
        detail::check(loupe_result_type_map(get(), &m.data, &m.width, &m.height));
        return m;
    }
    /// Connected regions of the mask.
    std::vector<Region> regions() const {
        size_t n = 0;
        detail::check(loupe_result_region_count(get(), &n));
        std::vector<Region> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            LoupeRegion r{};
            detail::check(loupe_result_region(get(), i, &r));
            out.push_back(Region{r.x, r.y, r.width, r.height, r.area, r.type_index,
                                 r.type_name != nullptr ? r.type_name : "", r.mean_score, r.max_score});
        }
        return out;
    }
    /// Writes the overlay PNG (heatmap, red mask outline, yellow region boxes) over `image`.
    void write_overlay(const LoupeImageView& image, const std::string& path) const {
        detail::check(loupe_result_write_overlay(get(), &image, path.c_str()));
    }

    /// A new result from this one's kept maps under other thresholds, minimum region area or segment rule
    /// (`options`; fields left empty keep this result's values): label, normalised score, mask, type map and
    /// regions are recomputed, the model does not run again. Bit-identical to inspecting with those options.
    /// Throws with LOUPE_STATUS_INVALID_ARGUMENT when `options` sets classes, LOUPE_STATUS_MISMATCH when this
    /// result's anomaly or type map was not kept.
    Result rethreshold(const InspectOptions& options) const {
        const detail::CInspectOptions c(options);
        LoupeResult* raw = nullptr;
        detail::check(loupe_result_rethreshold(get(), c.get(), &raw));
        return Result(raw);
    }
    /// The result as the JSON document `loupe inspect` writes per image (score, label, type, class probabilities,
    /// thresholds, evidence, regions, component identities), with `image` as its "image" field.
    std::string to_json(const std::string& image = "") const {
        size_t length = 0;
        detail::check(loupe_result_to_json(get(), image.c_str(), nullptr, 0, &length));
        std::string out(length + 1, '\0');
        detail::check(loupe_result_to_json(get(), image.c_str(), &out[0], out.size(), &length));
        out.resize(length);
        return out;
    }

    /// The C handle (still owned by this object).
    const LoupeResult* get() const noexcept { return handle_.get(); }

private:
    detail::Handle<LoupeResult, loupe_result_destroy> handle_;
};

/// What an engine holds (LoupeEngineInfo, with its strings copied).
struct EngineInfo {
    std::string model_name;     ///< the backbone model's name
    std::string model_id;       ///< the backbone model's content id (profiles and banks record it)
    std::string bank_name;      ///< the prompt bank's name
    std::string bank_id;        ///< the prompt bank's content id
    std::string postprocessor;  ///< the post-processor's kind (dapo-postprocess-cpu, -gpu, or a plugin's)
    uint32_t input_width = 0;   ///< model input size in pixels (images of other sizes are resized to it)
    uint32_t input_height = 0;
    uint32_t layers = 0;                      ///< patch-feature layers (top of a text-only map's range)
    uint32_t feature_dim = 0;                 ///< feature dimension
    float image_threshold = 0.0f;             ///< image threshold of text-only results without a profile
    float pixel_threshold = 0.0f;             ///< pixel threshold of text-only results without a profile
    uint32_t min_region_area = 0;             ///< postprocess.min_region_area
    Segment segment = Segment::Anomalous;     ///< postprocess.segment
    uint32_t class_count = 0;                 ///< "normal" plus the defect words (Engine::classes())
    bool has_default_profile = false;         ///< whether the configuration names a default profile
};

/// An inspection engine. Move-only; share one between threads (by reference) and give each thread a Session.
class Engine {
public:
    /// Loads a configuration file (.toml, .json, .yaml); LOUPE_SECTION__FIELD variables override it.
    static Engine from_file(const std::string& path) {
        LoupeEngine* raw = nullptr;
        detail::check(loupe_engine_create_from_file(path.c_str(), &raw));
        return Engine(raw);
    }
    /// Parses configuration text; relative paths are relative to the working directory.
    static Engine from_string(const std::string& text, ConfigFormat format) {
        LoupeEngine* raw = nullptr;
        detail::check(loupe_engine_create_from_string(text.c_str(), static_cast<uint32_t>(format), &raw));
        return Engine(raw);
    }

    /// Loupe's embedded default model and prompt bank with the default settings (no configuration file, no
    /// environment variables): what `loupe inspect` uses without options.
    static Engine create_default() {
        LoupeEngine* raw = nullptr;
        detail::check(loupe_engine_create_default(&raw));
        return Engine(raw);
    }

    /// Model and bank identity, post-processor, input size, configured thresholds and segment rule.
    EngineInfo info() const {
        LoupeEngineInfo c{};
        c.struct_size = sizeof c;
        detail::check(loupe_engine_info(get(), &c));
        const auto text = [](const char* p) { return std::string(p != nullptr ? p : ""); };
        EngineInfo out;
        out.model_name = text(c.model_name);
        out.model_id = text(c.model_id);
        out.bank_name = text(c.bank_name);
        out.bank_id = text(c.bank_id);
        out.postprocessor = text(c.postprocessor);
        out.input_width = c.input_width;
        out.input_height = c.input_height;
        out.layers = c.layers;
        out.feature_dim = c.feature_dim;
        out.image_threshold = c.image_threshold;
        out.pixel_threshold = c.pixel_threshold;
        out.min_region_area = c.min_region_area;
        out.segment = c.segment == LOUPE_SEGMENT_ALL ? Segment::All : Segment::Anomalous;
        out.class_count = c.class_count;
        out.has_default_profile = c.has_default_profile;
        return out;
    }

    /// Class names: "normal", then the defect vocabulary.
    std::vector<std::string> classes() const {
        size_t n = 0;
        detail::check(loupe_engine_class_count(get(), &n));
        std::vector<std::string> out;
        out.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            const char* name = nullptr;
            detail::check(loupe_engine_class_name(get(), i, &name));
            out.emplace_back(name);
        }
        return out;
    }

    /// The C handle (still owned by this object).
    const LoupeEngine* get() const noexcept { return handle_.get(); }

private:
    explicit Engine(LoupeEngine* raw) noexcept : handle_(raw) {}
    detail::Handle<LoupeEngine, loupe_engine_destroy> handle_;
};

/// Reference augmentation for Profile::create (the LOUPE_AUGMENTATION_* values).
enum class Augmentation : uint32_t {
    None = LOUPE_AUGMENTATION_NONE,            ///< the images only
    Flips = LOUPE_AUGMENTATION_FLIPS,          ///< plus mirror images and half turn (4 views)
    Rotations = LOUPE_AUGMENTATION_ROTATIONS,  ///< the 8 symmetries of the square
};

/// Options of Profile::create (LoupeProfileOptions).
struct ProfileOptions {
    std::string name = "profile";                   ///< the customer or part
    Augmentation augmentation = Augmentation::None;  ///< views added per reference
    float coreset_fraction = 1.0f;                   ///< share of reference patches kept, in (0, 1]
    uint64_t seed = 0;                               ///< coreset seed
};

/// A product profile (vocabulary, thresholds, fusion, golden samples) bound to an engine's backbone. Move-only;
/// immutable, so any number of threads and sessions may use one. Sessions hold what they use: a Profile may be
/// destroyed while sessions still inspect with it.
class Profile {
public:
    /// Loads a profile file (made by `loupe profile create` or save()) and binds it to `engine`.
    static Profile load(const Engine& engine, const std::string& path) {
        LoupeProfile* raw = nullptr;
        detail::check(loupe_profile_load(engine.get(), path.c_str(), &raw));
        return Profile(raw);
    }
    /// Makes a profile with golden samples from at least 2 good images of the product (read during the call).
    static Profile create(const Engine& engine, const std::vector<LoupeImageView>& references,
                          const ProfileOptions& options = {}) {
        LoupeProfileOptions o{};
        o.struct_size = sizeof o;
        o.name = options.name.c_str();
        o.augmentation = static_cast<uint32_t>(options.augmentation);
        o.coreset_fraction = options.coreset_fraction;
        o.seed = options.seed;
        LoupeProfile* raw = nullptr;
        detail::check(loupe_profile_create(engine.get(), references.data(), references.size(), &o, &raw));
        return Profile(raw);
    }

    /// Writes the profile file (replacing it).
    void save(const std::string& path) const { detail::check(loupe_profile_save(get(), path.c_str())); }
    /// Its name.
    std::string name() const {
        const char* v = nullptr;
        detail::check(loupe_profile_name(get(), &v));
        return v;
    }
    /// Whether it holds golden samples.
    bool has_references() const {
        bool v = false;
        detail::check(loupe_profile_has_references(get(), &v));
        return v;
    }

    /// The C handle (still owned by this object).
    const LoupeProfile* get() const noexcept { return handle_.get(); }

private:
    explicit Profile(LoupeProfile* raw) noexcept : handle_(raw) {}
    detail::Handle<LoupeProfile, loupe_profile_destroy> handle_;
};

/// One image's outcome in Session::inspect_batch with options: its status and, on success, its result; on failure
/// the library's message about this image (empty on success).
struct BatchItem {
    LoupeStatus status = LOUPE_STATUS_OK;
    std::optional<Result> result;
    std::string error;

    bool ok() const noexcept { return status == LOUPE_STATUS_OK; }
};

namespace detail {

/// Image `index`'s part of a batch message ("2 of 4 images failed: images[1]: ...; images[2]: ..."), or the
/// whole message when it has no such part.
inline std::string batch_error(const std::string& message, size_t index) {
    const std::string key = "images[" + std::to_string(index) + "]: ";
    for (const char* lead : {": ", "; "}) {
        const size_t at = message.find(lead + key);
        if (at != std::string::npos) {
            const size_t start = at + 2 + key.size();
            const size_t end = message.find("; images[", start);
            return message.substr(start, end == std::string::npos ? std::string::npos : end - start);
        }
    }
    return message;
}

}  // namespace detail

/// A per-thread inspection context on an Engine (which it keeps alive): its profile and its mutual-scoring
/// window. Move-only; one thread at a time.
class Session {
public:
    explicit Session(const Engine& engine) {
        LoupeSession* raw = nullptr;
        detail::check(loupe_session_create(engine.get(), &raw));
        handle_ = Handle(raw);
    }

    /// Inspects one image (detection and segmentation) with the session's profile, or against its mutual window;
    /// the pixels are read during the call only.
    Result inspect(const LoupeImageView& image) {
        LoupeResult* raw = nullptr;
        detail::check(loupe_session_inspect(handle_.get(), &image, &raw));
        return Result(raw);
    }

    /// Inspects one image with `profile` for this call only (the session's profile and window are untouched).
    Result inspect(const LoupeImageView& image, const Profile& profile) {
        LoupeResult* raw = nullptr;
        detail::check(loupe_session_inspect_with_profile(handle_.get(), profile.get(), &image, &raw));
        return Result(raw);
    }

    /// Inspects one image with per-call options (thresholds, minimum region area, segment rule, a subset of the
    /// vocabulary, outputs to skip), otherwise as inspect(image). Thresholds given replace the engine's or the
    /// profile's for this call; the result reports them (Result::thresholds()).
    Result inspect(const LoupeImageView& image, const InspectOptions& options) {
        const detail::CInspectOptions c(options);
        LoupeResult* raw = nullptr;
        detail::check(loupe_session_inspect_ex(handle_.get(), &image, c.get(), &raw));
        return Result(raw);
    }

    /// Inspects one image with `profile` for this call only and per-call options (a vocabulary subset is taken
    /// from the profile's vocabulary).
    Result inspect(const LoupeImageView& image, const Profile& profile, const InspectOptions& options) {
        const detail::CInspectOptions c(options);
        LoupeResult* raw = nullptr;
        detail::check(loupe_session_inspect_with_profile_ex(handle_.get(), profile.get(), &image, c.get(), &raw));
        return Result(raw);
    }

    /// Inspects with `profile` from now on; nullptr = the engine's default profile. Clears the mutual window.
    void set_profile(const Profile* profile) {
        detail::check(loupe_session_set_profile(handle_.get(), profile != nullptr ? profile->get() : nullptr));
    }

    /// Mutual scoring of single images against a window of the last `window` images (a new, empty one); 0 = off.
    void set_mutual(uint32_t window) { detail::check(loupe_session_set_mutual(handle_.get(), window)); }

    /// Images in the mutual window.
    size_t window_len() const {
        size_t n = 0;
        detail::check(loupe_session_window_len(handle_.get(), &n));
        return n;
    }

    /// Inspects several images in batches of the configured engine.batch_size (with mutual scoring on: each
    /// against the others of the batch, which needs more than reference.mutual_min_pool images).
    std::vector<Result> inspect_batch(const std::vector<LoupeImageView>& images) {
        std::vector<LoupeResult*> raw(images.size(), nullptr);
        std::vector<Result> out;
        out.reserve(raw.size());  // before the call: taking ownership below must not throw
        detail::check(loupe_session_inspect_batch(handle_.get(), images.data(), images.size(), raw.data()));
        for (LoupeResult* r : raw) {
            out.emplace_back(r);
        }
        return out;
    }

    /// Inspects several images as inspect_batch(images) does, with per-call options and an outcome per image. A
    /// view Loupe refuses (format, size, stride, NULL data) fails only its own item (its status and message),
    /// even when every view is refused; this does not throw. What fails the call as a whole throws loupe::Error:
    /// a moved-from session, a session busy on another thread, invalid options (LOUPE_STATUS_INVALID_ARGUMENT, an
    /// unknown defect word), a mutual batch too small (LOUPE_STATUS_MISMATCH), inference failing for the whole
    /// batch. When some views are refused and the others' inference fails, the items carry both statuses.
    /// Batch and single results differ slightly (loupe.h: image scores within 1e-6); inspect(image, options) is
    /// bit-identical to a single inspection.
    std::vector<BatchItem> inspect_batch(const std::vector<LoupeImageView>& images, const InspectOptions& options) {
        const detail::CInspectOptions c(options);
        std::vector<LoupeResult*> raw(images.size(), nullptr);
        std::vector<LoupeStatus> statuses(images.size(), LOUPE_STATUS_OK);
        std::vector<BatchItem> out;
        out.reserve(raw.size());  // before the call: taking ownership below must not throw
        const LoupeStatus status = loupe_session_inspect_batch_ex(handle_.get(), images.data(), images.size(),
                                                                  c.get(), raw.data(), statuses.data());
        // Owned at once (no allocation: reserved, and empty strings), so that nothing leaks if a later step throws.
        for (size_t i = 0; i < raw.size(); ++i) {
            out.emplace_back();
            out.back().status = statuses[i];
            if (raw[i] != nullptr) {
                out.back().result.emplace(raw[i]);
            }
        }
        if (status == LOUPE_STATUS_OK) {
            return out;
        }
        const std::string message = loupe_last_error();
        // Per-image statuses: a partial batch, or every image refused for its own view (the wrapper passes valid
        // arrays, so a NULL argument here is an image's data). Anything else failed the call.
        const bool per_image = status == LOUPE_STATUS_BATCH_PARTIAL || status == LOUPE_STATUS_IMAGE ||
                               (status == LOUPE_STATUS_NULL_ARGUMENT && handle_.get() != nullptr);
        if (!per_image) {
            throw Error(status, message);
        }
        for (size_t i = 0; i < out.size(); ++i) {
            if (out[i].status != LOUPE_STATUS_OK) {
                out[i].error = detail::batch_error(message, i);
            }
        }
        return out;
    }

    /// The C handle (still owned by this object).
    LoupeSession* get() const noexcept { return handle_.get(); }

private:
    using Handle = detail::Handle<LoupeSession, loupe_session_destroy>;
    Handle handle_;
};

/// Log levels (the LOUPE_LOG_* values): a callback receives messages of its level and more severe.
enum class LogLevel : uint32_t {
    Off = LOUPE_LOG_OFF,
    Error = LOUPE_LOG_ERROR,
    Warn = LOUPE_LOG_WARN,
    Info = LOUPE_LOG_INFO,
    Debug = LOUPE_LOG_DEBUG,
    Trace = LOUPE_LOG_TRACE,
};

/// Its name: "off", "error", "warn", "info", "debug" or "trace".
inline const char* name(LogLevel level) noexcept {
    switch (level) {
        case LogLevel::Off:
            return "off";
        case LogLevel::Error:
            return "error";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Info:
            return "info";
        case LogLevel::Debug:
            return "debug";
        case LogLevel::Trace:
            break;
    }
    return "trace";
}

/// The level named `text` (as name() spells it), if any.
inline std::optional<LogLevel> parse_log_level(std::string_view text) noexcept {
    for (LogLevel l : {LogLevel::Off, LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug,
                       LogLevel::Trace}) {
        if (text == name(l)) {
            return l;
        }
    }
    return std::nullopt;
}

/// A log handler: level, target (the module, e.g. "loupe_dapo::postprocess::backend") and message, both valid
/// during the call only.
using LogHandler = std::function<void(LogLevel level, std::string_view target, std::string_view message)>;

namespace detail {

/// The installed handler. Never destroyed (a leaked function-local static): a GPU driver thread may still log
/// while the process exits, after static destructors have run.
struct LogSink {
    std::mutex mutex;
    std::shared_ptr<const LogHandler> handler;
};

inline LogSink& log_sink() {
    static LogSink* const sink = new LogSink();
    return *sink;
}

/// The C callback: copies the handler out under the lock (so that replacing it never races with a call on
/// another thread), runs it without the lock, and swallows every exception: nothing may unwind into Loupe.
inline void log_trampoline(uint32_t level, const char* target, const char* message, void* /*user_data*/) noexcept {
    try {
        std::shared_ptr<const LogHandler> handler;
        {
            LogSink& sink = log_sink();
            const std::lock_guard<std::mutex> lock(sink.mutex);
            handler = sink.handler;
        }
        if (handler && *handler) {
            (*handler)(static_cast<LogLevel>(level), target != nullptr ? target : "",
                       message != nullptr ? message : "");
        }
    } catch (...) {
        // A throwing handler loses its message; Loupe goes on.
    }
}

}  // namespace detail

/// Routes Loupe's log messages of `level` and more severe (which post-processing backend was chosen, a GPU
/// failure that fell back to the CPU, messages of wgpu) to `handler`, replacing any earlier one. The handler may
/// run on any thread (inspecting threads, GPU driver threads), concurrently; exceptions it throws are swallowed.
/// It must not call set_log_callback or clear_log_callback. LogLevel::Off or an empty handler removes it.
/// Throws loupe::Error when the process already has another Rust `log` logger in this copy of the library.
inline void set_log_callback(LogLevel level, LogHandler handler) {
    if (level == LogLevel::Off || !handler) {
        detail::check(loupe_set_log_callback(LOUPE_LOG_OFF, nullptr, nullptr));
        detail::LogSink& sink = detail::log_sink();
        const std::lock_guard<std::mutex> lock(sink.mutex);
        sink.handler.reset();
        return;
    }
    auto next = std::make_shared<const LogHandler>(std::move(handler));
    detail::LogSink& sink = detail::log_sink();
    std::shared_ptr<const LogHandler> previous;
    {
        const std::lock_guard<std::mutex> lock(sink.mutex);
        previous = std::exchange(sink.handler, std::move(next));
    }
    const LoupeStatus status = loupe_set_log_callback(static_cast<uint32_t>(level), &detail::log_trampoline, nullptr);
    if (status != LOUPE_STATUS_OK) {
        const std::string message = loupe_last_error();
        {
            const std::lock_guard<std::mutex> lock(sink.mutex);
            sink.handler = std::move(previous);  // Loupe kept the earlier callback (or none)
        }
        throw Error(status, message);
    }
}

/// Removes the log handler: Loupe logs nothing (the default).
inline void clear_log_callback() { set_log_callback(LogLevel::Off, nullptr); }

/// The library's SDK version.
inline std::string version() { return loupe_version(); }

/// Throws when the loaded library implements another C API version than this header declares.
inline void check_api_version() {
    if (loupe_c_api_version() != LOUPE_C_API_VERSION) {
        throw Error(LOUPE_STATUS_ERROR, "libloupe implements C API version " + std::to_string(loupe_c_api_version()) +
                                            ", this header declares " + std::to_string(LOUPE_C_API_VERSION));
    }
}

}  // namespace loupe

#endif  // LOUPE_HPP
