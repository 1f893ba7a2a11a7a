//! Test fixture: a plugin whose backbone panics while being created when `components.options.panic` is
//! `"create"`, and in every `encode` otherwise. The host must get errors, never an abort.

use std::sync::Arc;

use loupe_sdk::plugin::guest::Registrar;
use loupe_sdk::{Backbone, ComponentInfo, ImageFeatures, ImageView, InputGeometry, LoupeConfig, Result};

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

fn factory(cfg: &LoupeConfig) -> Result<Arc<dyn Backbone>> {
    let mode = cfg.components.options.as_ref().and_then(|o| o.get("panic")).and_then(|v| v.as_str());
    if mode == Some("create") {
        panic!("create exploded on purpose");
    }
    let geometry =
        InputGeometry { input_size: [8, 8], mean: [0.0; 3], std: [1.0; 3], grid: [1, 1], feature_dim: 2, layers: 1 };
    Ok(Arc::new(Panicking { geometry }))
}

fn register(r: &mut Registrar) -> Result<()> {
    r.backbone(c"panicking-backbone", factory)
}

loupe_sdk::export_plugin!(name: "panicking", version: "0.0.1", register: register);
