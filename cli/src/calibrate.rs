//! `loupe calibrate`: a profile's image and pixel thresholds from data, stored in the profile.
//!
//! - Good images only: the image threshold leaves at most `--fpr` of the good images above it, and the pixel
//!   threshold at most `--fpr` of them with any mask pixel (the same rate for the verdict and the segmentation,
//!   so a good part is rarely flagged by either).
//! - With defective images: the image threshold is F1-optimal over good and defective images; with their masks
//!   (`--masks DIR`, or the MVTec convention `<root>/ground_truth/<type>/<stem>_mask.png` next to `<root>/<type>/`
//!   or `<root>/test/<type>/`), the pixel threshold is F1-optimal over their pixels and the good images' pixels,
//!   otherwise it comes from the good images as above.
//!
//! The thresholds are for the scoring the profile is used in: golden samples when it holds references; else
//! mutual scoring with `--mutual`; else text. The calibration records that mode; in another mode the engine's
//! defaults apply.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use loupe_eval::calibration::{pixel_threshold_f1, threshold_at_fpr, threshold_f1};
use loupe_eval::dataset::read_mask;
use loupe_eval::metrics::BinnedScores;
use loupe_sdk::profile::Calibration;
use loupe_sdk::{LoupeConfig, LoupeError, OwnedImage, ScoringMode};

use crate::options::EngineOptions;
use crate::references;
use crate::scoring::{Scorer, primed_stream_order};

/// Bins of the pixel scores for the F1-optimal pixel threshold.
const PIXEL_BINS: usize = 1 << 16;

/// Arguments of `loupe calibrate`.
#[derive(Args)]
pub struct CalibrateArgs {
    /// The profile to calibrate (made by `loupe profile create`).
    #[arg(long)]
    profile: PathBuf,
    /// Good images (folders, files or quoted glob patterns), none of them a reference of the profile.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    good: Vec<String>,
    /// Defective images, for F1-optimal thresholds.
    #[arg(long, num_args = 1.., value_name = "PATH")]
    defective: Vec<String>,
    /// Folder of the defective images' masks (`<stem>_mask.png`); default: the MVTec convention.
    #[arg(long)]
    masks: Option<PathBuf>,
    /// False-positive rate on good images for the thresholds set from good images.
    #[arg(long, default_value_t = 0.01)]
    fpr: f64,
    /// Calibrate for mutual scoring (profiles without references): good images stream through a window.
    #[arg(long)]
    mutual: bool,
    /// Images in the mutual window.
    #[arg(long, value_name = "N")]
    mutual_window: Option<usize>,
    /// Where to write the calibrated profile (default: replace `--profile`).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineOptions,
}

/// Runs `loupe calibrate`. Exit status: 0 calibrated, 2 nothing written.
pub fn run(args: &CalibrateArgs) -> ExitCode {
    match calibrate(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::print_error("", &e);
            ExitCode::from(2)
        }
    }
}

/// The mask of a defective image: in `--masks`, or by the MVTec convention.
fn mask_path(image: &Path, masks: Option<&Path>) -> Option<PathBuf> {
    let stem = image.file_stem()?.to_string_lossy().into_owned();
    let name = format!("{stem}_mask.png");
    if let Some(dir) = masks {
        return Some(dir.join(name));
    }
    let type_dir = image.parent()?;
    let kind = type_dir.file_name()?;
    let mut root = type_dir.parent()?;
    if root.file_name().is_some_and(|n| n == "test") && !root.join("ground_truth").is_dir() {
        root = root.parent()?;
    }
    Some(root.join("ground_truth").join(kind).join(name))
}

/// What calibration needs of one scored image.
struct Observed {
    score: f32,
    map_max: f32,
    map: Vec<f32>,
}

fn calibrate(args: &CalibrateArgs) -> Result<(), LoupeError> {
    if !(args.fpr >= 0.0 && args.fpr < 1.0) {
        return Err(LoupeError::Config {
            file: None,
            field: "--fpr".into(),
            expected: "a rate in [0, 1)".into(),
            found: args.fpr.to_string(),
        });
    }
    let mut cfg: LoupeConfig = args.engine.load()?;
    cfg.profile = Some(args.profile.clone());
    cfg.reference.mutual = args.mutual;
    if let Some(n) = args.mutual_window {
        cfg.reference.mutual_window = n;
    }
    let cfg = args.engine.validate(&cfg)?;
    let engine = loupe_dapo::build_engine(&cfg)?;
    eprintln!("{}", crate::options::model_line(&cfg, &engine));
    let bound = engine.default_profile().cloned().ok_or_else(|| LoupeError::profile(&args.profile, "not loaded"))?;
    let good = references::expand(&args.good, "--good")?;
    let defective =
        if args.defective.is_empty() { Vec::new() } else { references::expand(&args.defective, "--defective")? };
    references::refuse_overlap(&good, defective.iter().map(PathBuf::as_path), "--good")?;
    if let Some(info) = &bound.profile().meta.references {
        let refs: Vec<PathBuf> = info.images.iter().map(|i| PathBuf::from(&i.name)).collect();
        references::refuse_overlap(&refs, good.iter().chain(&defective).map(PathBuf::as_path), "--good/--defective")?;
    }
    let mut scorer = Scorer::new(&engine, Some(bound.clone()), good.len())?;
    let mode = scorer.mode();
    eprintln!("calibrating for: {}", scorer.describe(&engine));
    let bar = ProgressBar::new((good.len() + defective.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    // Good images: for mutual scoring, a stream in a fixed shuffled order primed with its last window.
    let (order, priming) = match &scorer.window {
        Some(w) if mode == ScoringMode::Mutual => primed_stream_order(good.len(), w.settings().window),
        _ => ((0..good.len()).collect(), 0),
    };
    let mut good_obs = Vec::with_capacity(good.len());
    for (step, &i) in order.iter().enumerate() {
        let image = OwnedImage::open(&good[i])?;
        let d = scorer.score(&engine, &image.view(), false)?.detection;
        if step >= priming {
            good_obs.push(Observed { score: d.score, map_max: d.anomaly_map.max(), map: d.anomaly_map.data });
            bar.inc(1);
        }
    }
    let mut bad_obs = Vec::with_capacity(defective.len());
    let mut masks = Vec::new();
    for path in &defective {
        let image = OwnedImage::open(path)?;
        let d = scorer.score_apart(&engine, &image.view())?.detection;
        let mask = match mask_path(path, args.masks.as_deref()) {
            Some(m) if m.is_file() => Some(read_mask(&m, image.width, image.height)?),
            _ => None,
        };
        masks.push(mask);
        bad_obs.push(Observed { score: d.score, map_max: d.anomaly_map.max(), map: d.anomaly_map.data });
        bar.inc(1);
    }
    bar.finish_and_clear();
    let metric = |e: loupe_eval::metrics::MetricError| LoupeError::mismatch("calibration data", "enough images", e);
    let good_scores: Vec<f32> = good_obs.iter().map(|o| o.score).collect();
    let good_max: Vec<f32> = good_obs.iter().map(|o| o.map_max).collect();
    let mut measured = BTreeMap::new();
    let (image_t, method) = if bad_obs.is_empty() {
        (threshold_at_fpr(&good_scores, args.fpr).map_err(metric)?, "fpr")
    } else {
        let scores: Vec<f32> = good_scores.iter().chain(bad_obs.iter().map(|o| &o.score)).copied().collect();
        let labels: Vec<bool> = good_obs.iter().map(|_| false).chain(bad_obs.iter().map(|_| true)).collect();
        let (t, best) = threshold_f1(&scores, &labels).map_err(metric)?;
        measured.insert("image_f1".to_string(), best.f1);
        measured.insert("image_recall".to_string(), best.recall);
        measured.insert("image_precision".to_string(), best.precision);
        (t, "f1")
    };
    let with_masks = masks.iter().filter(|m| m.is_some()).count();
    let pixel_t = if with_masks > 0 {
        let range = engine.map_range(mode, Some(&bound));
        let mut pixels = BinnedScores::new(0.0, range, PIXEL_BINS).map_err(metric)?;
        for o in &good_obs {
            pixels.add("good image", &o.map, &vec![false; o.map.len()]).map_err(metric)?;
        }
        for (o, m) in bad_obs.iter().zip(&masks) {
            if let Some(m) = m {
                pixels.add("defective image", &o.map, m).map_err(metric)?;
            }
        }
        let (t, best) = pixel_threshold_f1(&pixels).map_err(metric)?;
        measured.insert("pixel_f1".to_string(), best.f1);
        measured.insert("defective_images_with_masks".to_string(), with_masks as f64);
        t
    } else {
        threshold_at_fpr(&good_max, args.fpr).map_err(metric)?
    };
    let above = |v: &[f32], t: f32| v.iter().filter(|&&x| x > t).count() as f64 / v.len().max(1) as f64;
    measured.insert("good_image_fpr".to_string(), above(&good_scores, image_t));
    measured.insert("good_images_with_mask_pixels".to_string(), above(&good_max, pixel_t));
    if !bad_obs.is_empty() {
        let bad: Vec<f32> = bad_obs.iter().map(|o| o.score).collect();
        measured.insert("defective_image_recall".to_string(), above(&bad, image_t));
    }
    let mut profile = bound.profile().clone();
    profile.meta.calibration = Some(Calibration {
        mode,
        image_threshold: image_t,
        pixel_threshold: pixel_t,
        method: method.to_string(),
        fpr: (method == "fpr" || with_masks == 0).then_some(args.fpr as f32),
        good_images: good_obs.len(),
        defective_images: bad_obs.len(),
        measured: measured.clone(),
    });
    let out = args.out.clone().unwrap_or_else(|| args.profile.clone());
    // Write beside the target and rename, so a failed write never leaves a half profile in its place.
    let tmp = out.with_extension("safetensors.tmp");
    profile.save(&tmp)?;
    std::fs::rename(&tmp, &out).map_err(|e| LoupeError::io(&out, e))?;
    println!(
        "calibrated `{}` for {} scoring on {} good and {} defective images: image threshold {image_t:.6}, pixel \
         threshold {pixel_t:.6} ({}); wrote {}",
        profile.meta.name,
        mode.name(),
        good_obs.len(),
        bad_obs.len(),
        measured.iter().map(|(k, v)| format!("{k} {v:.4}")).collect::<Vec<_>>().join(", "),
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_the_mvtec_convention_or_the_given_folder() {
        let flat = mask_path(Path::new("/d/crack/a.png"), None).unwrap();
        assert_eq!(flat, PathBuf::from("/d/ground_truth/crack/a_mask.png"));
        let given = mask_path(Path::new("/d/crack/a.png"), Some(Path::new("/m"))).unwrap();
        assert_eq!(given, PathBuf::from("/m/a_mask.png"));
    }
}
