//! DAPO post-processing on the GPU through wgpu (WGSL compute kernels, `kernels.wgsl`), with the CPU path
//! ([`DapoPostProcessor`]) as reference and fallback.
//!
//! On the GPU: patch/text similarities with the temperature and the per-layer softmax, the sum over layers,
//! bilinear upsampling (aligned corners), separable Gaussian smoothing, the pixel threshold and the per-pixel argmax
//! over defect types (and the per-class maps when kept). On the CPU, because they are small: the image score and
//! type (1 + K dot products), the bilinear taps and Gaussian weights (computed by the CPU code itself, so both
//! paths sample the same positions with the same weights), and the connected regions of the mask.
//!
//! Device, pipelines and buffers are created once and reused; each batch is one submission. A GPU failure at run
//! time (device lost, a mapping or validation error, even a panic inside wgpu) makes that batch run on the CPU
//! with a `log::warn!`; after such a failure the post-processor stays on the CPU.

mod context;
mod layout;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use loupe_sdk::config::PostprocessConfig;
use loupe_sdk::{ComponentInfo, Detection, PostProcessor, PostprocessRequest, Result, TextFeatures};

use super::{DapoPostProcessor, PixelMaps, assemble, check_request};
use context::{GpuContext, GpuFailure, GpuMaps};
use layout::{BatchLayout, BatchShape};

/// What wgpu offers on this machine, for the `auto` backend.
pub enum AdapterChoice {
    /// No adapter at all (no Vulkan, Metal or DX12 driver).
    None,
    /// Only a software adapter (lavapipe/llvmpipe, SwiftShader, WARP): correct but slower than the CPU path.
    Software(GpuAdapter),
    /// A hardware adapter (discrete first, then integrated, then virtual).
    Hardware(GpuAdapter),
}

/// An adapter wgpu found, with its description.
pub struct GpuAdapter {
    adapter: wgpu::Adapter,
    info: wgpu::AdapterInfo,
}

impl GpuAdapter {
    /// The adapter's name, driver and API as wgpu reports them.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Whether this is a software rasteriser on the CPU rather than a GPU.
    pub fn is_software(&self) -> bool {
        is_software(&self.info)
    }
}

impl fmt::Display for GpuAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.info;
        write!(f, "{} ({:?}, {:?}", i.name, i.backend, i.device_type)?;
        if !i.driver.is_empty() {
            write!(f, ", driver {} {}", i.driver, i.driver_info)?;
        }
        write!(f, ")")
    }
}

/// Software adapters: wgpu's device type `Cpu`, or a driver name that says so (some report `Other`).
fn is_software(info: &wgpu::AdapterInfo) -> bool {
    if info.device_type == wgpu::DeviceType::Cpu {
        return true;
    }
    let text = format!("{} {} {}", info.name, info.driver, info.driver_info).to_ascii_lowercase();
    ["llvmpipe", "lavapipe", "softpipe", "swiftshader", "software", "microsoft basic render"]
        .iter()
        .any(|s| text.contains(s))
}

/// Hardware kinds first (discrete, integrated, virtual, other), software last.
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    if is_software(info) {
        return 4;
    }
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        _ => 3,
    }
}

impl AdapterChoice {
    /// Enumerates the adapters of the enabled backends (`WGPU_BACKEND` narrows them) and picks the best one.
    pub fn probe() -> Self {
        quiet_device_select_layer();
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let best = adapters
            .into_iter()
            .map(|adapter| {
                let info = adapter.get_info();
                GpuAdapter { adapter, info }
            })
            .min_by_key(|a| rank(&a.info));
        match best {
            None => Self::None,
            Some(a) if a.is_software() => Self::Software(a),
            Some(a) => Self::Hardware(a),
        }
    }
}

/// The host's choice to keep every Vulkan layer as its environment configures it (see [`quiet_device_select_layer`]).
pub const KEEP_VULKAN_LAYERS: &str = "LOUPE_KEEP_VULKAN_LAYERS";

/// Keeps Mesa's device-select Vulkan layer (`VK_LAYER_MESA_device_select`, implicit, installed with
/// `mesa-vulkan-drivers`) from writing `error: XDG_RUNTIME_DIR is invalid or not set in the environment.` to the
/// host's stderr at every adapter probe: the layer asks libwayland for the compositor's GPU because wgpu enables
/// `VK_KHR_wayland_surface` whenever the driver offers it (wgpu has no option to leave it out), and libwayland
/// prints that line when XDG_RUNTIME_DIR is unusable. Where it would print, this sets `NODEVICE_SELECT=1` (the
/// switch in the layer's own manifest) once, before the first wgpu instance; the layer only orders adapters by the
/// desktop's preference, and [`AdapterChoice::probe`] ranks them itself. `LOUPE_KEEP_VULKAN_LAYERS=1` or any
/// `NODEVICE_SELECT` the host sets leaves the environment untouched (docs/gpu.md).
fn quiet_device_select_layer() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if !device_select_would_print(|name| std::env::var_os(name)) {
            return;
        }
        // SAFETY: `set_var` is unsafe because a thread reading or writing the environment without Rust's lock
        // (C code calling getenv/setenv) at the same moment could see a half-updated `environ`. This runs once per
        // process, before Loupe's first wgpu instance (every probe waits on `ONCE`), so no Vulkan loader or layer
        // started by Loupe is reading it, and Rust code reads through std's lock. What remains is a host thread
        // calling getenv/setenv in C during its first engine creation; docs/gpu.md tells such hosts to set
        // NODEVICE_SELECT (or LOUPE_KEEP_VULKAN_LAYERS=1) themselves. Accepted: the alternative is an `error:` line
        // on the stderr of every headless inspection service.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
        log::debug!("NODEVICE_SELECT=1: Mesa's device-select layer would print an XDG_RUNTIME_DIR error (no desktop)");
    });
}

/// Whether the device-select layer would print its XDG_RUNTIME_DIR error and the host has not decided about the
/// layer itself; `var` reads the environment.
fn device_select_would_print(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    // Mesa's layers exist on Linux and the BSDs only; elsewhere the variable would be noise.
    if !cfg!(all(unix, not(target_vendor = "apple"), not(target_os = "android"))) {
        return false;
    }
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    // The host chose: opted out, set the layer's switch either way, or configures the layer (device choice).
    if var(KEEP_VULKAN_LAYERS).is_some_and(|v| v == "1")
        || var("NODEVICE_SELECT").is_some()
        || set("MESA_VK_DEVICE_SELECT")
        || set("MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE")
    {
        return false;
    }
    // libwayland's rule (wl_display_connect): an inherited socket or an absolute WAYLAND_DISPLAY needs no runtime
    // directory; otherwise it prints unless XDG_RUNTIME_DIR is an absolute path.
    let absolute = |name: &str| var(name).is_some_and(|v| v.as_encoded_bytes().first() == Some(&b'/'));
    if set("WAYLAND_SOCKET") || absolute("WAYLAND_DISPLAY") {
        return false;
    }
    !absolute("XDG_RUNTIME_DIR")
}

/// The GPU state behind the lock: the context while it works, `None` once it failed.
struct GpuState {
    context: Option<GpuContext>,
}

/// The DAPO post-processor on the GPU; same results as [`DapoPostProcessor`] (parity within 1e-5, see
/// `docs/gpu.md`), which it falls back to on a GPU failure.
pub struct GpuPostProcessor {
    config: PostprocessConfig,
    cpu: DapoPostProcessor,
    adapter: String,
    state: Mutex<GpuState>,
    submissions: AtomicU64,
}

impl GpuPostProcessor {
    /// On the best adapter found (hardware first, software otherwise); an error naming the setting when there is
    /// none or its device cannot be opened.
    pub fn new(config: PostprocessConfig) -> Result<Self> {
        let adapter = match AdapterChoice::probe() {
            AdapterChoice::Hardware(a) | AdapterChoice::Software(a) => a,
            AdapterChoice::None => {
                return Err(loupe_sdk::LoupeError::Config {
                    file: None,
                    field: "postprocess.backend".into(),
                    expected: "cpu or auto on this machine: `gpu` needs a GPU adapter (Vulkan, Metal or DX12)".into(),
                    found: "gpu, and wgpu finds no adapter".into(),
                });
            }
        };
        Self::on_adapter(config, adapter)
    }

    /// On this adapter.
    pub fn on_adapter(config: PostprocessConfig, adapter: GpuAdapter) -> Result<Self> {
        let context = GpuContext::new(&adapter.adapter).map_err(|e| loupe_sdk::LoupeError::Component {
            component: "dapo-postprocess-gpu".into(),
            message: format!("GPU adapter {adapter}: {e}"),
        })?;
        Ok(Self {
            cpu: DapoPostProcessor::new(config.clone()),
            config,
            adapter: adapter.to_string(),
            state: Mutex::new(GpuState { context: Some(context) }),
            submissions: AtomicU64::new(0),
        })
    }

    /// The adapter in use, as text (name, API, kind, driver).
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Whether the GPU still serves batches (false after a failure: the CPU does the work from then on).
    pub fn gpu_active(&self) -> bool {
        self.state.lock().map(|s| s.context.is_some()).unwrap_or(false)
    }

    /// GPU submissions so far: one per batch (more only for a batch over the device's buffer limits).
    pub fn submissions(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }

    /// Destroys the GPU device as a driver reset would, so tests can check the fallback to the CPU.
    #[doc(hidden)]
    pub fn simulate_device_loss(&self) {
        if let Ok(mut s) = self.state.lock()
            && let Some(c) = s.context.as_mut()
        {
            c.destroy_device();
        }
    }

    /// Makes the next GPU batch lose its device in flight: the device is destroyed right after the batch is
    /// submitted, before its results are read back (a driver reset mid-batch), so tests can check that the batch
    /// in flight falls back to the CPU, with a warning, and that later batches keep working.
    #[doc(hidden)]
    pub fn inject_device_loss_for_tests(&self) {
        if let Ok(mut s) = self.state.lock()
            && let Some(c) = s.context.as_mut()
        {
            c.lose_device_after_next_submit();
        }
    }

    /// Plans batches as if the adapter's buffers were limited to `bytes`, so tests can exercise the splitting of
    /// large batches and the CPU path of images too large for the GPU.
    #[doc(hidden)]
    pub fn lower_buffer_limit_for_tests(&self, bytes: u64) {
        if let Ok(mut s) = self.state.lock()
            && let Some(c) = s.context.as_mut()
        {
            c.lower_buffer_limit(bytes);
        }
    }

    /// Post-processes a batch with one GPU submission (or several when it exceeds the device's buffer limits);
    /// one detection per request, in order. Falls back to the CPU on a GPU failure.
    pub fn process_requests(&self, batch: &[PostprocessRequest<'_>], text: &TextFeatures) -> Result<Vec<Detection>> {
        for r in batch {
            check_request(r, text)?;
        }
        if text.classes() > usize::from(u16::MAX) {
            // The type map holds u16 ids: leave such vocabularies to the CPU path, which decides what to do.
            return batch.iter().map(|r| self.cpu.process_request(r, text)).collect();
        }
        let mut out = Vec::with_capacity(batch.len());
        for chunk in self.chunks(batch, text) {
            let items = &batch[chunk.clone()];
            match self.gpu_maps(items, text) {
                Some(maps) => {
                    for (r, m) in items.iter().zip(maps) {
                        let maps =
                            PixelMaps { anomaly: m.anomaly, pixel_types: m.pixel_types, class_maps: m.class_maps };
                        out.push(assemble(&self.config, r, text, maps));
                    }
                }
                None => {
                    for r in items {
                        out.push(self.cpu.process_request(r, text)?);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Splits a batch into runs that fit the device's limits; an image too large on its own gets a run of its own,
    /// which `gpu_maps` leaves to the CPU.
    fn chunks(&self, batch: &[PostprocessRequest<'_>], text: &TextFeatures) -> Vec<std::ops::Range<usize>> {
        let whole = std::iter::once(0..batch.len()).collect();
        let Ok(state) = self.state.lock() else {
            return whole;
        };
        let Some(ctx) = state.context.as_ref() else {
            return whole;
        };
        let mut runs = Vec::new();
        let mut start = 0;
        let mut total = BatchShape::default();
        for (i, r) in batch.iter().enumerate() {
            let one = BatchShape::one(r, text, &self.config);
            let next = total.with(&one);
            if i > start && !ctx.fits(&next) {
                runs.push(start..i);
                start = i;
                total = one;
            } else {
                total = next;
            }
        }
        if start < batch.len() {
            runs.push(start..batch.len());
        }
        runs
    }

    /// The GPU's maps for a run, or `None` when the CPU must do it (logged).
    fn gpu_maps(&self, items: &[PostprocessRequest<'_>], text: &TextFeatures) -> Option<Vec<GpuMaps>> {
        let Ok(mut state) = self.state.lock() else {
            return None; // A panic during an earlier batch retired the GPU; that batch already warned.
        };
        let ctx = state.context.as_mut()?;
        let shape = BatchShape::of(items, text, &self.config);
        if !ctx.fits(&shape) {
            log::info!(
                "a {}x{} map needs a {} MB buffer on the GPU, over the adapter's limits: this image runs on the CPU",
                shape.max_width,
                shape.max_height,
                shape.sizes.largest_bytes() >> 20
            );
            return None;
        }
        let layout = BatchLayout::new(items, text, &self.config);
        let keep = self.config.keep_class_maps;
        self.submissions.fetch_add(1, Ordering::Relaxed);
        let result = catch_unwind(AssertUnwindSafe(|| ctx.run(items, &layout, keep)));
        let failure = match result {
            Ok(Ok(maps)) => return Some(maps),
            Ok(Err(failure)) => failure,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                GpuFailure { message: format!("wgpu panicked: {message}"), fatal: true }
            }
        };
        if failure.fatal {
            log::warn!(
                "GPU post-processing failed ({}); this batch and all later ones run on the CPU",
                failure.message
            );
            state.context = None;
        } else {
            log::warn!("GPU post-processing failed ({}); this batch runs on the CPU", failure.message);
        }
        None
    }
}

impl fmt::Debug for GpuPostProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuPostProcessor").field("adapter", &self.adapter).field("config", &self.config).finish()
    }
}

impl PostProcessor for GpuPostProcessor {
    fn info(&self) -> ComponentInfo {
        ComponentInfo { kind: "dapo-postprocess-gpu".into(), name: "dapo".into(), id: String::new() }
    }

    fn process_request(&self, request: &PostprocessRequest<'_>, text: &TextFeatures) -> Result<Detection> {
        let mut v = GpuPostProcessor::process_requests(self, std::slice::from_ref(request), text)?;
        v.pop().ok_or_else(|| loupe_sdk::LoupeError::inference("GPU post-processing", "no result"))
    }

    fn process_requests(&self, batch: &[PostprocessRequest<'_>], text: &TextFeatures) -> Result<Vec<Detection>> {
        GpuPostProcessor::process_requests(self, batch, text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn would_print(vars: &[(&str, &str)]) -> bool {
        device_select_would_print(|name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).into()))
    }

    #[cfg(all(unix, not(target_vendor = "apple"), not(target_os = "android")))]
    #[test]
    fn the_layer_is_quieted_only_where_libwayland_would_print_and_the_host_left_it_alone() {
        assert!(would_print(&[]), "no XDG_RUNTIME_DIR: libwayland prints");
        assert!(would_print(&[("XDG_RUNTIME_DIR", "")]));
        assert!(would_print(&[("XDG_RUNTIME_DIR", "run/user/1000")]), "relative: libwayland calls it invalid");
        assert!(would_print(&[("WAYLAND_DISPLAY", "wayland-0")]), "a relative display still needs the directory");
        assert!(would_print(&[(KEEP_VULKAN_LAYERS, "0")]));
        assert!(!would_print(&[("XDG_RUNTIME_DIR", "/run/user/1000")]), "a desktop session keeps the layer");
        assert!(!would_print(&[("WAYLAND_DISPLAY", "/run/wayland-0")]));
        assert!(!would_print(&[("WAYLAND_SOCKET", "3")]));
        assert!(!would_print(&[(KEEP_VULKAN_LAYERS, "1")]), "the opt-out");
        assert!(!would_print(&[("NODEVICE_SELECT", "0")]), "the host set the layer's switch itself");
        assert!(!would_print(&[("NODEVICE_SELECT", "1")]));
        assert!(!would_print(&[("MESA_VK_DEVICE_SELECT", "1002:73bf")]), "the host picks a device through the layer");
        assert!(!would_print(&[("MESA_VK_DEVICE_SELECT_FORCE_DEFAULT_DEVICE", "1")]));
    }
}
