// Loupe C++17 wrapper: header-only RAII classes over the C API (loupe.h), with exceptions.
//
//   loupe::Engine engine = loupe::Engine::from_file("loupe.toml");   // share between threads
//   loupe::Session session(engine);                                  // one per thread
//   loupe::Result r = session.inspect(loupe::view(mat.data, mat.cols, mat.rows, mat.step[0],
//                                                 loupe::PixelFormat::Bgr8));
//   if (r.is_anomalous()) { for (const loupe::Region& reg : r.regions()) { ... } }
//
// Classes own one handle each and are move-only; the destructor releases it. A failed call throws loupe::Error,
// which carries the LoupeStatus and loupe_last_error()'s message. Thread-safety is that of the C functions
// (see loupe.h): Engine and Result may be used from any thread, a Session from one thread at a time.
// Guide: docs/c-api.md.
#ifndef LOUPE_HPP
#define LOUPE_HPP

#include <cstddef>
#include <cstdint>
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

/// The result of inspecting one image. Move-only; may be read from several threads at once.
class Result {
public:
    explicit Result(LoupeResult* raw) noexcept : handle_(raw) {}

    /// Image anomaly score in [0, 1].
    float score() const {
        float v = 0.0f;
        detail::check(loupe_result_score(get(), &v));
        return v;
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
    /// Top of the anomaly map's range (its number of feature layers).
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

/// A per-thread inspection context on an Engine (which it keeps alive). Move-only; one thread at a time.
class Session {
public:
    explicit Session(const Engine& engine) {
        LoupeSession* raw = nullptr;
        detail::check(loupe_session_create(engine.get(), &raw));
        handle_ = Handle(raw);
    }

    /// Inspects one image (detection and segmentation); the pixels are read during the call only.
    Result inspect(const LoupeImageView& image) {
        LoupeResult* raw = nullptr;
        detail::check(loupe_session_inspect(handle_.get(), &image, &raw));
        return Result(raw);
    }

    /// Inspects several images in batches of the configured engine.batch_size.
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
