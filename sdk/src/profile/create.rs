//! Making a profile from good reference images: encode them (and their augmented views) with the engine's
//! backbone, keep their patch features as the memory (optionally coreset-subsampled), and measure the scale of
//! normal variation between them.

use loupe_reference::stats::median_of_quantiles;
use loupe_reference::{Memory, PatchSet};
use sha2::{Digest, Sha256};

use super::{Augmentation, FORMAT_VERSION, Profile, ProfileMeta, ReferenceInfo, ReferenceSource};
use crate::engine::Engine;
use crate::error::{LoupeError, Result};
use crate::fusion::{Fusion, MIN_SCALE, SCALE_QUANTILE};
use crate::image_input::ImageView;

/// Patches per reference on which the scale is measured (evenly spaced over the grid).
pub const SCALE_CELLS_PER_IMAGE: usize = 256;

/// A good image given to [`create`], with the name the profile records.
#[derive(Clone, Copy, Debug)]
pub struct ReferenceImage<'a> {
    /// Its name (file name, camera frame id).
    pub name: &'a str,
    /// Its pixels.
    pub image: ImageView<'a>,
}

/// What to put in a new profile besides the references.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileOptions {
    /// The profile's name.
    pub name: String,
    /// The product's defect words (unset: the engine's vocabulary).
    pub vocabulary: Option<Vec<String>>,
    /// Fusion rule and weight (unset: the configuration's).
    pub fusion: Option<Fusion>,
    /// Views added per reference.
    pub augmentation: Augmentation,
    /// Share of the patches the greedy coreset keeps, in (0, 1]; 1 keeps all.
    pub coreset_fraction: f32,
    /// Seed of the coreset.
    pub seed: u64,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        Self {
            name: "profile".into(),
            vocabulary: None,
            fusion: None,
            augmentation: Augmentation::None,
            coreset_fraction: 1.0,
            seed: 0,
        }
    }
}

/// SHA-256 of a view's pixels (format, size and rows without padding), hex.
fn pixel_hash(view: &ImageView<'_>) -> String {
    let mut h = Sha256::new();
    h.update(format!("{:?} {}x{}\n", view.format(), view.width(), view.height()).as_bytes());
    for y in 0..view.height() {
        h.update(view.row(y));
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A profile for `engine`'s backbone from at least two good `references`. Each reference (and each augmented view)
/// runs through the backbone once.
pub fn create(engine: &Engine, references: &[ReferenceImage<'_>], options: &ProfileOptions) -> Result<Profile> {
    if references.len() < 2 {
        return Err(LoupeError::mismatch(
            "reference images of a profile (the scale of normal variation is measured between them)",
            "at least 2",
            references.len(),
        ));
    }
    if !(options.coreset_fraction > 0.0 && options.coreset_fraction <= 1.0) {
        return Err(LoupeError::mismatch(
            "coreset fraction of a profile",
            "a number in (0, 1]",
            options.coreset_fraction,
        ));
    }
    if let Some(f) = &options.fusion {
        f.validate("fusion.text_weight")?;
    }
    let vocabulary = match &options.vocabulary {
        Some(words) => Some(engine.bind_vocabulary(words)?.words),
        None => None,
    };
    let geometry = engine.backbone().geometry().clone();
    let (layers, cells, dim) = (geometry.layers, geometry.grid[0] * geometry.grid[1], geometry.feature_dim);
    let mut sets = Vec::with_capacity(references.len() * options.augmentation.views());
    let mut owners = Vec::with_capacity(sets.capacity());
    let mut originals = Vec::with_capacity(references.len());
    for (owner, reference) in references.iter().enumerate() {
        let extra = options.augmentation.extra_views(&reference.image);
        let mut views = vec![reference.image];
        views.extend(extra.iter().map(|v| v.view()));
        let features = engine.encode(&views).map_err(|e| named(reference.name, e))?;
        for (i, f) in features.iter().enumerate() {
            let set = PatchSet::new(&f.patches, layers, cells, dim).map_err(|e| named(reference.name, e.into()))?;
            if i == 0 {
                originals.push(set.clone());
            }
            sets.push(set);
            owners.push(owner as u32);
        }
    }
    let mut memory = Memory::from_patch_sets(&sets, &owners)?;
    drop(sets);
    if options.coreset_fraction < 1.0 {
        memory = memory.subsample(options.coreset_fraction, options.seed)?;
    }
    let loo = memory.leave_one_out_scores(&originals, SCALE_CELLS_PER_IMAGE)?;
    let scale = median_of_quantiles(loo.iter().map(Vec::as_slice), SCALE_QUANTILE).unwrap_or(MIN_SCALE).max(MIN_SCALE);
    let info = ReferenceInfo {
        images: references
            .iter()
            .map(|r| ReferenceSource {
                name: r.name.to_string(),
                sha256: pixel_hash(&r.image),
                size: [r.image.width(), r.image.height()],
            })
            .collect(),
        augmentation: options.augmentation,
        coreset_fraction: options.coreset_fraction,
        coreset_seed: options.seed,
        rows_per_layer: memory.layers().iter().map(|l| l.len()).collect(),
        scale,
        scale_samples: loo.iter().map(Vec::len).sum(),
    };
    let model = engine.backbone().info();
    let meta = ProfileMeta {
        name: options.name.clone(),
        model_id: model.id,
        model_name: model.name,
        layers,
        dim,
        grid: geometry.grid,
        vocabulary,
        fusion: options.fusion,
        calibration: None,
        references: Some(info),
        created_by: format!("loupe {} (profile format {FORMAT_VERSION})", env!("CARGO_PKG_VERSION")),
    };
    Ok(Profile { meta, memory: Some(memory) })
}

/// An error about one reference, naming it.
fn named(name: &str, err: LoupeError) -> LoupeError {
    LoupeError::Image { path: name.into(), reason: format!("reference image: {err}") }
}
