//! How a command scores its images (`eval`, `calibrate`, `inspect`): text only, golden samples (`--references`
//! or `--profile`), or mutual scoring (`--mutual`, a session's rolling window), and what each image yields: the
//! detection and, when reference evidence was fused, the text-only detection of the same features.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use loupe_sdk::profile::{Augmentation, ProfileOptions, create};
use loupe_sdk::reference::MutualWindow;
use loupe_sdk::{BoundProfile, Detection, Engine, FusionRule, ImageView, LoupeConfig, LoupeError, ScoringMode};

use crate::references;

/// `--references`, `--shots`, `--profile`, `--mutual` and the fusion flags.
#[derive(Args, Clone, Debug, Default)]
pub struct ScoringOptions {
    /// Golden samples: good images (folders, files or quoted glob patterns that loupe expands), made into a profile
    /// in memory for this run. Put the data set before this option (it takes several values).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub references: Vec<String>,
    /// Keep K of the references, spread evenly over their sorted list (deterministic).
    #[arg(long, value_name = "K", requires = "references")]
    pub shots: Option<usize>,
    /// Views added per reference: `none`, `flips` (4 views) or `rotations` (8).
    #[arg(long, value_parser = parse_augmentation, default_value = "none", requires = "references")]
    pub augment: Augmentation,
    /// Share of the reference patches the greedy coreset keeps, in (0, 1].
    #[arg(long, default_value_t = 1.0, requires = "references")]
    pub coreset: f32,
    /// A product profile (`loupe profile create`): its vocabulary, thresholds, fusion and golden samples.
    #[arg(long, conflicts_with = "references")]
    pub profile: Option<PathBuf>,
    /// Mutual scoring (zero-shot, no references): each image against the images before it in a rolling window.
    #[arg(long, conflicts_with_all = ["references"])]
    pub mutual: bool,
    /// Images in the mutual window (`reference.mutual_window`).
    #[arg(long, value_name = "N")]
    pub mutual_window: Option<usize>,
    /// How reference and text evidence combine (`reference.fusion`): mean, harmonic, layer_sum or reference.
    #[arg(long, value_parser = parse_fusion)]
    pub fusion: Option<FusionRule>,
    /// Weight of the text evidence in `mean` and `harmonic` (`reference.text_weight`).
    #[arg(long)]
    pub text_weight: Option<f32>,
}

/// Parses `--augment` as the configuration spells it.
pub(crate) fn parse_augmentation(s: &str) -> Result<Augmentation, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("expected none, flips or rotations, found `{s}`"))
}

/// Parses `--fusion` as the configuration spells it.
pub(crate) fn parse_fusion(s: &str) -> Result<FusionRule, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("expected mean, harmonic, layer_sum or reference, found `{s}`"))
}

impl ScoringOptions {
    /// Puts the flags that are configuration fields into `cfg` (re-validated by the caller).
    pub fn apply(&self, cfg: &mut LoupeConfig) {
        if self.mutual {
            cfg.reference.mutual = true;
        }
        if let Some(n) = self.mutual_window {
            cfg.reference.mutual_window = n;
        }
        if let Some(f) = self.fusion {
            cfg.reference.fusion = f;
        }
        if let Some(w) = self.text_weight {
            cfg.reference.text_weight = w;
        }
        if let Some(p) = &self.profile {
            cfg.profile = Some(p.clone());
        }
    }

    /// The profile the flags choose: made from `--references` (refusing overlaps with `scored`), else the engine's
    /// default (`--profile` or the configuration's `profile`).
    pub fn profile<'a>(
        &self,
        engine: &Engine,
        scored: impl IntoIterator<Item = &'a Path>,
    ) -> Result<Option<Arc<BoundProfile>>, LoupeError> {
        if self.references.is_empty() {
            return Ok(engine.default_profile().cloned());
        }
        let paths = references::select(&self.references, self.shots)?;
        references::refuse_overlap(&paths, scored, "--references")?;
        let images = references::decode(&paths)?;
        let refs = references::views(&images);
        let options = ProfileOptions {
            name: format!("{} references", refs.len()),
            augmentation: self.augment,
            coreset_fraction: self.coreset,
            ..ProfileOptions::default()
        };
        Ok(Some(engine.bind_profile(create(engine, &refs, &options)?)?))
    }
}

/// What a command scores with.
pub struct Scorer {
    /// The profile, if any.
    pub profile: Option<Arc<BoundProfile>>,
    /// The stream window, in mutual mode.
    pub window: Option<MutualWindow>,
}

/// One image's results.
pub struct Scored {
    /// The detection (fused when reference evidence applied).
    pub detection: Detection,
    /// The text-only detection of the same features, when asked for and reference evidence applied.
    pub text_only: Option<Detection>,
}

impl Scorer {
    /// Golden samples when `profile` has them; else mutual scoring when the configuration says so (a window of
    /// `reference.mutual_window` images, at most `images - 1` so an image never meets itself); else text.
    pub fn new(engine: &Engine, profile: Option<Arc<BoundProfile>>, images: usize) -> Result<Self, LoupeError> {
        let window = if engine.mutual_applies(profile.as_deref()) {
            let mut settings = engine.mutual_settings();
            settings.window = settings.window.min(images.saturating_sub(1)).max(1);
            if settings.window < settings.min_pool {
                return Err(LoupeError::mismatch(
                    format!(
                        "images for mutual scoring (each is scored against up to reference.mutual_window = {} others, \
                         reference.mutual_min_pool = {})",
                        engine.reference_config().mutual_window,
                        settings.min_pool
                    ),
                    format!("at least {}", settings.min_pool + 1),
                    images,
                ));
            }
            Some(MutualWindow::new(settings)?)
        } else {
            None
        };
        Ok(Self { profile, window })
    }

    /// The defect vocabulary results use (the profile's, else the engine's).
    pub fn vocabulary<'a>(&'a self, engine: &'a Engine) -> &'a [String] {
        self.profile.as_ref().map_or(engine.vocabulary(), |p| p.text().words.as_slice())
    }

    /// The scoring mode.
    pub fn mode(&self) -> ScoringMode {
        if self.profile.as_ref().is_some_and(|p| p.has_references()) {
            ScoringMode::Golden
        } else if self.window.is_some() {
            ScoringMode::Mutual
        } else {
            ScoringMode::Text
        }
    }

    /// One line describing the scoring.
    pub fn describe(&self, engine: &Engine) -> String {
        let f = engine.fusion(self.profile.as_deref());
        let fusion = format!("fusion `{}` (text weight {})", f.rule.name(), f.text_weight);
        match (self.mode(), &self.profile) {
            (ScoringMode::Golden, Some(p)) => {
                let info = p.profile().meta.references.as_ref();
                format!(
                    "golden samples of profile `{}`: {} reference images, augmentation {:?}, coreset {}, scale {:.4}; {fusion}",
                    p.name(),
                    info.map_or(0, |i| i.images.len()),
                    info.map(|i| i.augmentation).unwrap_or_default(),
                    info.map_or(1.0, |i| i.coreset_fraction),
                    info.map_or(0.0, |i| i.scale),
                )
            }
            (ScoringMode::Mutual, _) => {
                let s = self.window.as_ref().map(|w| *w.settings());
                format!(
                    "mutual scoring: each image against the {} images before it (window), mean of the lowest {} of \
                     the per-image distances, text only until {} images are in the window; {fusion}",
                    s.map_or(0, |s| s.window),
                    s.map_or(0.0, |s| s.fraction),
                    s.map_or(0, |s| s.min_pool),
                )
            }
            _ => "text evidence only (DAPO)".to_string(),
        }
    }

    /// Scores one image; `compare`: also the text-only detection when reference evidence applies. In mutual mode
    /// the image then joins the window.
    pub fn score(&mut self, engine: &Engine, image: &ImageView<'_>, compare: bool) -> Result<Scored, LoupeError> {
        self.score_as(engine, image, compare, true)
    }

    /// As [`Scorer::score`], but in mutual mode the image stays out of the window (a defective calibration image
    /// must not become a reference for the others).
    pub fn score_apart(&mut self, engine: &Engine, image: &ImageView<'_>) -> Result<Scored, LoupeError> {
        self.score_as(engine, image, false, false)
    }

    fn score_as(
        &mut self,
        engine: &Engine,
        image: &ImageView<'_>,
        compare: bool,
        join: bool,
    ) -> Result<Scored, LoupeError> {
        let features = engine.encode(std::slice::from_ref(image))?;
        let outputs = [engine.output_size(image)];
        let mode = self.mode();
        let profile = self.profile.as_deref();
        let (evidence, filling) = match (&mut self.window, mode) {
            (_, ScoringMode::Golden) => (engine.golden_evidence(&features, profile)?, false),
            (Some(w), ScoringMode::Mutual) => {
                let e = if join { w.evidence(&features[0])? } else { w.evidence_apart(&features[0])? };
                let filling = e.is_none();
                (vec![e], filling)
            }
            _ => (vec![None], false),
        };
        let fused = evidence[0].is_some();
        let mut detection = pop(engine.postprocess(&features, &evidence, &outputs, profile)?)?;
        detection.evidence.window_filling = filling;
        let text_only = if compare && fused {
            Some(pop(engine.postprocess(&features, &[None], &outputs, profile)?)?)
        } else {
            None
        };
        Ok(Scored { detection, text_only })
    }
}

fn pop(mut v: Vec<Detection>) -> Result<Detection, LoupeError> {
    v.pop().ok_or_else(|| LoupeError::inference("engine", "no result"))
}

/// The order a stream of `n` images is scored in for mutual scoring: a fixed pseudo-random permutation (seed 0),
/// so each image's window mixes the data set's folders as a production stream mixes good and defective parts.
pub fn stream_order(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = loupe_reference::rng::SplitMix64::new(0);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// The order a mutual stream of `n` images is scored in: [`stream_order`] preceded by its last `window` images
/// (at most `n - 1`), so that every image after the first `window` ones, which only fill the window, meets a full
/// window of others (a stream that has been running). Returns the order and how many leading images only prime.
pub fn primed_stream_order(n: usize, window: usize) -> (Vec<usize>, usize) {
    let order = stream_order(n);
    let warm = window.min(n.saturating_sub(1));
    (order[n - warm..].iter().chain(&order).copied().collect(), warm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_order_is_a_fixed_permutation() {
        let o = stream_order(50);
        let mut sorted = o.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(o, sorted, "shuffled");
        assert_eq!(o, stream_order(50), "the same every run");
    }

    #[test]
    fn a_primed_stream_starts_with_its_own_last_window() {
        let (order, priming) = primed_stream_order(10, 4);
        assert_eq!(priming, 4);
        assert_eq!(order.len(), 14);
        assert_eq!(&order[..4], &stream_order(10)[6..]);
        assert_eq!(primed_stream_order(3, 48).1, 2, "never more than the other images");
    }

    #[test]
    fn flags_parse_as_the_configuration_spells_them() {
        assert_eq!(parse_fusion("layer_sum"), Ok(FusionRule::LayerSum));
        assert!(parse_fusion("sum").unwrap_err().contains("expected mean"));
        assert_eq!(parse_augmentation("flips"), Ok(Augmentation::Flips));
    }
}
