// Test fixture: a C++ post-processor that throws on chosen inputs, to show that an exception caught at the plugin
// boundary (the `guarded` pattern of plugins/vendor-hysteresis) becomes an error for that call only, and that the
// same engine then goes on inspecting.
//
// It is the vendor-hysteresis post-processor (its source is compiled into this one, unchanged), registered as
// `fault-hysteresis`, which throws before post-processing a map of a chosen width (the image's width with
// `postprocess.map_size = "input"`, the default), so a test chooses the faulting image by its size:
//   kThrowStdWidth (61)   -> std::runtime_error (caught as std::exception: its what() becomes the message)
//   kThrowOtherWidth (67) -> an int (caught by catch (...): "unknown C++ exception")
// Any other width is post-processed exactly as vendor-hysteresis does.
//
// Build (from the repository root):
//   g++ -std=c++17 -O2 -shared -fPIC -Wall -Wextra -Werror -I include
//       plugins/fixture-panicking/cpp/throwing_postprocessor.cpp -o libfault_hysteresis.so

#include "loupe_plugin.h"

// The vendor plugin's own entry point is renamed: this library exports its own declaration below.
#define loupe_plugin_declare vendor_hysteresis_declare_unused
#include "../../vendor-hysteresis/hysteresis_postprocessor.cpp"
#undef loupe_plugin_declare

namespace fault {

constexpr uint32_t kThrowStdWidth = 61;
constexpr uint32_t kThrowOtherWidth = 67;

void write_error(LoupeErrorBuf *err, const std::string &message) {
  if (err == nullptr || err->message == nullptr || err->capacity == 0) return;
  const size_t n = std::min(message.size(), err->capacity - 1);
  std::memcpy(err->message, message.data(), n);
  err->message[n] = '\0';
}

// The boundary helper, as in vendor-hysteresis: no C++ exception may cross the C boundary.
template <typename F>
int32_t guarded(LoupeErrorBuf *err, F &&body) {
  try {
    body();
    return LOUPE_PLUGIN_OK;
  } catch (const std::exception &e) {
    write_error(err, std::string("fault-hysteresis: ") + e.what());
  } catch (...) {
    write_error(err, "fault-hysteresis: unknown C++ exception");
  }
  return LOUPE_PLUGIN_ERROR;
}

int32_t process(void *instance, const LoupePluginFeatures *f, const LoupePluginText *t, LoupePluginDetection *out,
                LoupeErrorBuf *err) {
  int32_t status = LOUPE_PLUGIN_OK;
  const int32_t guard_status = guarded(err, [&] {
    if (out == nullptr) throw std::invalid_argument("null output");
    if (out->width == kThrowStdWidth)
      throw std::runtime_error("injected fault: a " + std::to_string(out->width) + "-pixel-wide map");
    if (out->width == kThrowOtherWidth) throw 42;
    // vendor-hysteresis's own entry point, with its own guard.
    status = ::process(instance, f, t, out, err);
  });
  return guard_status != LOUPE_PLUGIN_OK ? guard_status : status;
}

int32_t register_components(const LoupeHostApi *host, LoupeErrorBuf *err) {
  return guarded(err, [&] {
    if (host == nullptr || host->struct_size < sizeof(LoupeHostApi) || host->register_postprocessor == nullptr)
      throw std::runtime_error("host API too old for this plugin");
    LoupePostProcessorTable table{};
    table.struct_size = sizeof(LoupePostProcessorTable);
    table.name = "fault-hysteresis";
    table.user_data = nullptr;
    table.create = ::create;
    table.destroy = ::destroy;
    table.process = process;
    char message[512] = {0};
    LoupeErrorBuf inner{message, sizeof message};
    if (host->register_postprocessor(host->context, &table, &inner) != LOUPE_PLUGIN_OK)
      throw std::runtime_error(std::string("registration refused: ") + message);
  });
}

const LoupePluginDeclaration kDeclaration = {
    LOUPE_PLUGIN_ABI_VERSION, sizeof(LoupePluginDeclaration), "0.1.0", "fault-hysteresis", "0.0.1",
    register_components,
};

}  // namespace fault

extern "C" __attribute__((visibility("default"))) const LoupePluginDeclaration *loupe_plugin_declare(void) {
  return &fault::kDeclaration;
}
