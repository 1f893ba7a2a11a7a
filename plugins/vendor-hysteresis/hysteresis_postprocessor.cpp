// A vendor plugin written in C++: the DAPO post-processing maps with a different region rule, hysteresis
// thresholding (a pixel is defective when it exceeds `high`, or exceeds `low` and touches such a pixel through
// other pixels above `low`). It plugs into a Loupe pipeline beside the DAPO backbone and prompt bank without
// rebuilding the SDK.
//
// Build (from the repository root):
//   g++ -std=c++17 -O2 -shared -fPIC -Wall -Wextra -Werror -I include
//       plugins/vendor-hysteresis/hysteresis_postprocessor.cpp -o libvendor_hysteresis.so
// Options (configuration, `components.options`): "hysteresis_low" and "hysteresis_high", as fractions of the
// anomaly map's range (the number of feature layers); defaults 0.35 and 0.5.

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "loupe_plugin.h"

namespace {

constexpr float kTemperature = 0.07f;

void write_error(LoupeErrorBuf *err, const std::string &message) {
  if (err == nullptr || err->message == nullptr || err->capacity == 0) return;
  const size_t n = std::min(message.size(), err->capacity - 1);
  std::memcpy(err->message, message.data(), n);
  err->message[n] = '\0';
}

// Every entry point runs through this: no C++ exception may cross the C boundary.
template <typename F>
int32_t guarded(LoupeErrorBuf *err, F &&body) {
  try {
    body();
    return LOUPE_PLUGIN_OK;
  } catch (const std::exception &e) {
    write_error(err, std::string("vendor-hysteresis: ") + e.what());
  } catch (...) {
    write_error(err, "vendor-hysteresis: unknown C++ exception");
  }
  return LOUPE_PLUGIN_ERROR;
}

// Reads a number after `"key":` in the configuration JSON. A real plugin would use a JSON library; this keeps the
// example free of dependencies.
float json_number(const std::string &json, const std::string &key, float fallback) {
  const std::string needle = "\"" + key + "\"";
  const size_t at = json.find(needle);
  if (at == std::string::npos) return fallback;
  const size_t colon = json.find(':', at + needle.size());
  if (colon == std::string::npos) throw std::invalid_argument("option " + key + " has no value");
  char *end = nullptr;
  const float v = std::strtof(json.c_str() + colon + 1, &end);
  if (end == json.c_str() + colon + 1) throw std::invalid_argument("option " + key + " is not a number");
  return v;
}

struct Hysteresis {
  float low;
  float high;
};

void normalize(std::vector<float> &v) {
  float n = 0.f;
  for (float x : v) n += x * x;
  n = std::sqrt(n);
  if (n > 0.f)
    for (float &x : v) x /= n;
}

void softmax(std::vector<float> &v) {
  const float m = *std::max_element(v.begin(), v.end());
  float s = 0.f;
  for (float &x : v) {
    x = std::exp(x - m);
    s += x;
  }
  for (float &x : v) x /= s;
}

float dot(const float *a, const float *b, size_t n) {
  float s = 0.f;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Bilinear sampling with aligned corners, as DAPO's reference does.
struct Axis {
  std::vector<size_t> i0, i1;
  std::vector<float> w;
  Axis(size_t in, size_t out) : i0(out), i1(out), w(out) {
    const float scale = out > 1 ? float(in - 1) / float(out - 1) : 0.f;
    for (size_t o = 0; o < out; ++o) {
      const float src = float(o) * scale;
      i0[o] = std::min(size_t(std::floor(src)), in - 1);
      i1[o] = std::min(i0[o] + 1, in - 1);
      w[o] = src - float(i0[o]);
    }
  }
};

float sample(const std::vector<float> &grid, size_t gw, const Axis &xs, const Axis &ys, size_t x, size_t y) {
  const float *r0 = &grid[ys.i0[y] * gw];
  const float *r1 = &grid[ys.i1[y] * gw];
  const float top = r0[xs.i0[x]] + (r0[xs.i1[x]] - r0[xs.i0[x]]) * xs.w[x];
  const float bottom = r1[xs.i0[x]] + (r1[xs.i1[x]] - r1[xs.i0[x]]) * xs.w[x];
  return top + (bottom - top) * ys.w[y];
}

int32_t create(void *, const char *config_json, void **instance, LoupeErrorBuf *err) {
  return guarded(err, [&] {
    if (config_json == nullptr || instance == nullptr) throw std::invalid_argument("null argument");
    const std::string json(config_json);
    auto h = new Hysteresis{json_number(json, "hysteresis_low", 0.35f), json_number(json, "hysteresis_high", 0.5f)};
    if (!(h->low >= 0.f && h->low <= h->high && h->high <= 1.f)) {
      const std::string msg = "expected 0 <= hysteresis_low <= hysteresis_high <= 1, found low " +
                              std::to_string(h->low) + ", high " + std::to_string(h->high);
      delete h;
      throw std::invalid_argument(msg);
    }
    *instance = h;
  });
}

void destroy(void *instance) { delete static_cast<Hysteresis *>(instance); }

int32_t process(void *instance, const LoupePluginFeatures *f, const LoupePluginText *t, LoupePluginDetection *out,
                LoupeErrorBuf *err) {
  return guarded(err, [&] {
    if (!instance || !f || !t || !out || !f->global || !f->patches || !t->rows) throw std::invalid_argument("null argument");
    if (f->dim != t->dim) throw std::invalid_argument("feature and text dimensions differ");
    const auto &h = *static_cast<const Hysteresis *>(instance);
    const size_t d = f->dim, classes = t->classes, cells = size_t(f->grid_height) * f->grid_width;
    if (classes < 2) throw std::invalid_argument("need normal plus at least one defect class");

    // Image level: the global feature against the text rows, and against the mean defect row.
    std::vector<float> g(f->global, f->global + d);
    normalize(g);
    std::vector<float> probs(classes), any(d, 0.f);
    for (size_t k = 0; k < classes; ++k) probs[k] = dot(g.data(), t->rows + k * d, d) / kTemperature;
    softmax(probs);
    for (size_t k = 1; k < classes; ++k)
      for (size_t i = 0; i < d; ++i) any[i] += t->rows[k * d + i];
    normalize(any);
    std::vector<float> pair{dot(g.data(), t->rows, d) / kTemperature, dot(g.data(), any.data(), d) / kTemperature};
    softmax(pair);
    out->score = pair[1];
    out->image_threshold = 0.5f;
    out->image_type = uint32_t(std::max_element(probs.begin() + 1, probs.end()) - probs.begin());
    std::copy(probs.begin(), probs.end(), out->class_probabilities);

    // Patch level: per layer, softmax over classes; summed over layers.
    std::vector<std::vector<float>> grids(classes, std::vector<float>(cells, 0.f));
    std::vector<float> patch(d), logits(classes);
    for (size_t l = 0; l < f->layers; ++l) {
      for (size_t c = 0; c < cells; ++c) {
        std::copy(f->patches + (l * cells + c) * d, f->patches + (l * cells + c + 1) * d, patch.begin());
        normalize(patch);
        for (size_t k = 0; k < classes; ++k) logits[k] = dot(patch.data(), t->rows + k * d, d) / kTemperature;
        softmax(logits);
        for (size_t k = 0; k < classes; ++k) grids[k][c] += logits[k];
      }
    }
    std::vector<float> anomaly_grid(cells, 0.f);
    for (size_t k = 1; k < classes; ++k)
      for (size_t c = 0; c < cells; ++c) anomaly_grid[c] += grids[k][c];

    const size_t w = out->width, hgt = out->height;
    const Axis xs(f->grid_width, w), ys(f->grid_height, hgt);
    for (size_t y = 0; y < hgt; ++y)
      for (size_t x = 0; x < w; ++x) out->anomaly_map[y * w + x] = sample(anomaly_grid, f->grid_width, xs, ys, x, y);

    // Hysteresis: seeds above `high`, grown through 8-connected pixels above `low`.
    const float range = float(f->layers), high = h.high * range, low = h.low * range;
    out->pixel_threshold = high;
    std::vector<size_t> stack;
    std::fill(out->mask, out->mask + w * hgt, uint8_t(0));
    for (size_t i = 0; i < w * hgt; ++i)
      if (out->anomaly_map[i] > high) {
        out->mask[i] = 255;
        stack.push_back(i);
      }
    while (!stack.empty()) {
      const size_t i = stack.back();
      stack.pop_back();
      const long x = long(i % w), y = long(i / w);
      for (long dy = -1; dy <= 1; ++dy)
        for (long dx = -1; dx <= 1; ++dx) {
          const long nx = x + dx, ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= long(w) || ny >= long(hgt)) continue;
          const size_t j = size_t(ny) * w + size_t(nx);
          if (out->mask[j] == 0 && out->anomaly_map[j] > low) {
            out->mask[j] = 255;
            stack.push_back(j);
          }
        }
    }
    // Type of each defective pixel: the most probable defect class there.
    for (size_t y = 0; y < hgt; ++y)
      for (size_t x = 0; x < w; ++x) {
        const size_t i = y * w + x;
        uint16_t best = 0;
        if (out->mask[i]) {
          float best_v = -1.f;
          for (size_t k = 1; k < classes; ++k) {
            const float v = sample(grids[k], f->grid_width, xs, ys, x, y);
            if (v > best_v) {
              best_v = v;
              best = uint16_t(k);
            }
          }
        }
        out->type_map[i] = best;
      }
  });
}

int32_t register_components(const LoupeHostApi *host, LoupeErrorBuf *err) {
  return guarded(err, [&] {
    if (host == nullptr || host->struct_size < sizeof(LoupeHostApi) || host->register_postprocessor == nullptr)
      throw std::runtime_error("host API too old for this plugin");
    LoupePostProcessorTable table{};
    table.struct_size = sizeof(LoupePostProcessorTable);
    table.name = "vendor-hysteresis";
    table.user_data = nullptr;
    table.create = create;
    table.destroy = destroy;
    table.process = process;
    char message[512] = {0};
    LoupeErrorBuf inner{message, sizeof message};
    if (host->register_postprocessor(host->context, &table, &inner) != LOUPE_PLUGIN_OK)
      throw std::runtime_error(std::string("registration refused: ") + message);
  });
}

const LoupePluginDeclaration kDeclaration = {
    // "0.1.0": the Loupe SDK version this plugin was written against (same major.minor required while 0.x).
    LOUPE_PLUGIN_ABI_VERSION, sizeof(LoupePluginDeclaration), "0.1.0", "vendor-hysteresis", "1.0.0",
    register_components,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const LoupePluginDeclaration *loupe_plugin_declare(void) {
  return &kDeclaration;
}
