// Loupe C++17 wrapper: header-only RAII classes over the C API (loupe.h), with exceptions.
//
//   loupe::Engine engine = loupe::Engine::from_file("loupe.toml");   // share between threads
//   loupe::Session session(engine);                                  // one per thread
//   loupe::Result r = session.inspect(loupe::view(mat.data, mat.cols, mat.rows, mat.step[0],
//                                                 loupe::PixelFormat::Bgr8));
//   if (r.is_anomalous()) { for (const loupe::Region& reg : r.regions()) { ... } }
//
//   // One engine, one profile per customer (golden samples from good parts, or a profile file):
//   loupe::Profile acme = loupe::Profile::create(engine, good_views, {"acme"});
//   loupe::Profile zenith = loupe::Profile::load(engine, "zenith.safetensors");
//   session.set_profile(&acme);                       // from now on; nullptr = the engine's default
//   loupe::Result z = session.inspect(view, zenith);  // this call only
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
#include <optional>
#include <stdexcept>
#include <string>
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
};

/// Formats of configuration text (the LOUPE_CONFIG_* values).
enum class ConfigFormat : uint32_t {
    Toml = LOUPE_CONFIG_TOML,
    Json = LOUPE_CONFIG_JSON,
    Yaml = LOUPE_CONFIG_YAML,
};

/// A view of caller pixels (no copy): `height` rows `stride` bytes apart (0 = packed). For a cv::Mat:
/// `loupe::view(mat.data, mat.cols, mat.rows, mat.step[0], loupe::PixelFormat::Bgr8)`.
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

    /// The C handle (still owned by this object).
    const LoupeResult* get() const noexcept { return handle_.get(); }

private:
    detail::Handle<LoupeResult, loupe_result_destroy> handle_;
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

    /// The C handle (still owned by this object).
    LoupeSession* get() const noexcept { return handle_.get(); }

private:
    using Handle = detail::Handle<LoupeSession, loupe_session_destroy>;
    Handle handle_;
};

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
