//! Test fixture: a Rust plugin whose components misbehave on purpose, to show that the host turns every fault of a
//! component into an error for that call and goes on working.
//!
//! - `panicking-backbone` panics while being created when `components.options.panic` is `"create"`, and in every
//!   `encode` otherwise.
//! - `fault-backbone` is the DAPO CLIP backbone (`model.dir`, as `dapo-clip-onnx`: same features, bit for bit, on
//!   the same batches) that faults on the images that carry a **marker**, so a test chooses which image of a batch
//!   faults through its pixels:
//!   pixel (0, 0) is RGB [`MAGIC`] and the red byte of pixel (1, 0) is the fault code ([`Fault`]). An image without
//!   the marker is encoded normally; a marked image makes the whole `encode` call fault (except `wait`, which only
//!   delays it). The marker cannot occur in a gray image (its channels differ).
//!
//! | code | fault |
//! | --- | --- |
//! | 1 | panic |
//! | 2 | return an error |
//! | 3 | return one feature set fewer than images |
//! | 4 | return one feature set more |
//! | 5 | that image's features on a grid of half the height and twice the width (same number of values) |
//! | 6 | that image's features with dimension + 1 (global and patches) |
//! | 7 | that image's features with one layer fewer |
//! | 8 | a NaN in that image's patch features (layer 1, patch 5, channel 3) |
//! | 9 | +infinity in that image's global feature (channel 0) |
//! | 10 | `wait`: write `<flag_dir>/entered`, wait until `<flag_dir>/release` exists (60 s at most), then encode normally |
//!
//! `flag_dir` is `components.options."fault-backbone".flag_dir`; it lets a test hold an inspection inside the backbone
//! for as long as it needs (to call into the same session from another thread, deterministically).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loupe_sdk::plugin::guest::Registrar;
use loupe_sdk::{
    Backbone, ComponentInfo, ImageFeatures, ImageView, InputGeometry, LoupeConfig, LoupeError, PixelFormat, Result,
};

struct Panicking {
    geometry: InputGeometry,
}

impl Backbone for Panicking {
    fn info(&self) -> ComponentInfo {
        ComponentInfo { kind: "panicking".into(), name: "panicking".into(), id: "panicking".into() }
    }

    fn geometry(&self) -> &InputGeometry {
        &self.geometry
    }

    fn encode(&self, _images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>> {
        panic!("encode exploded on purpose")
    }
}

fn panicking_factory(cfg: &LoupeConfig) -> Result<Arc<dyn Backbone>> {
    let mode = cfg.components.options.as_ref().and_then(|o| o.get("panic")).and_then(|v| v.as_str());
    if mode == Some("create") {
        panic!("create exploded on purpose");
    }
    let geometry =
        InputGeometry { input_size: [8, 8], mean: [0.0; 3], std: [1.0; 3], grid: [1, 1], feature_dim: 2, layers: 1 };
    Ok(Arc::new(Panicking { geometry }))
}

/// RGB of pixel (0, 0) of a marked image.
pub const MAGIC: [u8; 3] = [0xFA, 0x17, 0x7E];

/// What a marked image makes `fault-backbone` do (the red byte of pixel (1, 0)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Panic.
    Panic = 1,
    /// Return an error.
    Error = 2,
    /// One feature set fewer than images.
    Missing = 3,
    /// One feature set more than images.
    Extra = 4,
    /// Features on another grid with the same number of cells.
    Grid = 5,
    /// Features of another dimension.
    Dim = 6,
    /// One layer fewer.
    Layers = 7,
    /// A NaN in the patch features.
    NanPatch = 8,
    /// +infinity in the global feature.
    InfGlobal = 9,
    /// Wait for the test's flag file, then encode normally.
    Wait = 10,
}

impl Fault {
    fn of(code: u8) -> Option<Self> {
        [
            Self::Panic,
            Self::Error,
            Self::Missing,
            Self::Extra,
            Self::Grid,
            Self::Dim,
            Self::Layers,
            Self::NanPatch,
            Self::InfGlobal,
            Self::Wait,
        ]
        .into_iter()
        .find(|f| *f as u8 == code)
    }
}

/// The fault a view's marker asks for, if it carries one.
fn marker(view: &ImageView<'_>) -> Option<Fault> {
    if view.width() < 2 || view.format() == PixelFormat::Gray8 {
        return None;
    }
    let row = view.row(0);
    let format = view.format();
    (format.rgb_at(row, 0) == MAGIC).then(|| Fault::of(format.rgb_at(row, 1)[0])).flatten()
}

struct FaultBackbone {
    inner: Arc<dyn Backbone>,
    flag_dir: Option<PathBuf>,
}

impl FaultBackbone {
    fn wait_for_release(&self) -> Result<()> {
        let dir = self.flag_dir.as_ref().ok_or_else(|| {
            LoupeError::inference("fault-backbone", "a `wait` marker needs components.options.fault-backbone.flag_dir")
        })?;
        std::fs::write(dir.join("entered"), b"").map_err(|e| LoupeError::inference("fault-backbone", e))?;
        let start = Instant::now();
        while !dir.join("release").exists() {
            if start.elapsed() > Duration::from_secs(60) {
                return Err(LoupeError::inference("fault-backbone", "`wait`: never released"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Backbone for FaultBackbone {
    fn info(&self) -> ComponentInfo {
        // The inner model's name and id, so that its prompt bank accepts this backbone.
        ComponentInfo { kind: "fault-backbone".into(), ..self.inner.info() }
    }

    fn geometry(&self) -> &InputGeometry {
        self.inner.geometry()
    }

    fn encode(&self, images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>> {
        let faults: Vec<(usize, Fault)> =
            images.iter().enumerate().filter_map(|(i, v)| marker(v).map(|f| (i, f))).collect();
        let n = images.len();
        for &(i, fault) in &faults {
            match fault {
                Fault::Wait => self.wait_for_release()?,
                Fault::Panic => panic!("injected panic at image {i} of {n}"),
                Fault::Error => {
                    return Err(LoupeError::inference("fault-backbone", format!("injected error at image {i} of {n}")));
                }
                _ => {}
            }
        }
        let mut features = self.inner.encode(images)?;
        for &(i, fault) in &faults {
            let f = &mut features[i];
            let cells = f.grid_h * f.grid_w;
            match fault {
                Fault::Missing => {
                    features.remove(i);
                    break;
                }
                Fault::Extra => {
                    let copy = f.clone();
                    features.push(copy);
                    break;
                }
                Fault::Grid => {
                    f.grid_h /= 2;
                    f.grid_w *= 2;
                }
                Fault::Dim => {
                    let d = f.dim;
                    f.global.push(0.5);
                    f.patches = f.patches.chunks(d).flat_map(|p| p.iter().copied().chain([0.5])).collect();
                    f.dim = d + 1;
                }
                Fault::Layers => {
                    f.layers -= 1;
                    f.patches.truncate(f.layers * cells * f.dim);
                }
                Fault::NanPatch => f.patches[(cells + 5) * f.dim + 3] = f32::NAN,
                Fault::InfGlobal => f.global[0] = f32::INFINITY,
                Fault::Wait | Fault::Panic | Fault::Error => {}
            }
        }
        Ok(features)
    }
}

fn fault_factory(cfg: &LoupeConfig) -> Result<Arc<dyn Backbone>> {
    let flag_dir = cfg
        .components
        .options
        .as_ref()
        .and_then(|o| o.get("fault-backbone"))
        .and_then(|o| o.get("flag_dir"))
        .and_then(|v| v.as_str())
        .map(PathBuf::from);
    Ok(Arc::new(FaultBackbone { inner: loupe_dapo::components::backbone_factory(cfg)?, flag_dir }))
}

fn register(r: &mut Registrar) -> Result<()> {
    r.backbone(c"panicking-backbone", panicking_factory)?;
    r.backbone(c"fault-backbone", fault_factory)
}

loupe_sdk::export_plugin!(name: "panicking", version: "0.0.1", register: register);
