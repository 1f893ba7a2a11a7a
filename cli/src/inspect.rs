//! `loupe inspect`: run the engine over images and folders, writing four outputs per image.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

use loupe_sdk::outputs::write_image_outputs;
use loupe_sdk::{Detection, LoupeConfig, LoupeError, OwnedImage, Session};

use crate::options::EngineOptions;
use crate::scoring::ScoringOptions;

/// File extensions taken from folders.
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// Arguments of `loupe inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// Image files or folders (folders are searched recursively for PNG, JPEG, BMP and TIFF files).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    engine: EngineOptions,
    #[command(flatten)]
    scoring: ScoringOptions,
    /// Defect words, comma-separated: restricts or extends the bank's vocabulary.
    #[arg(long, value_delimiter = ',')]
    defects: Option<Vec<String>>,
    /// Output folder.
    #[arg(long, default_value_os_t = crate::default_out())]
    out: PathBuf,
    /// Gaussian smoothing sigma of the anomaly map (pixels); 0 = none.
    #[arg(long)]
    smoothing: Option<f32>,
    /// Image score threshold.
    #[arg(long)]
    image_threshold: Option<f32>,
    /// Anomaly-map threshold of the mask.
    #[arg(long)]
    pixel_threshold: Option<f32>,
}

impl InspectArgs {
    /// Configuration file + environment, then command-line flags on top; re-validated as a whole.
    fn config(&self) -> Result<LoupeConfig, LoupeError> {
        let mut cfg = self.engine.load()?;
        if let Some(d) = &self.defects {
            cfg.prompts.defects = Some(d.clone());
        }
        if let Some(s) = self.smoothing {
            cfg.postprocess.smoothing_sigma = s;
        }
        if let Some(t) = self.image_threshold {
            cfg.postprocess.image_threshold = t;
        }
        if let Some(t) = self.pixel_threshold {
            cfg.postprocess.pixel_threshold = Some(t);
        }
        self.scoring.apply(&mut cfg);
        self.engine.validate(&cfg)
    }
}

/// Runs `loupe inspect`. Exit status: 0 all images inspected, 1 some failed, 2 nothing could run.
///
/// Images run through one session, in the order given (folders sorted): with golden samples each is scored
/// against them; with `--mutual` against the images before it (a rolling window, text only while it fills).
pub fn run(args: &InspectArgs) -> ExitCode {
    let images = match collect_images(&args.inputs) {
        Ok(v) if !v.is_empty() => v,
        Ok(_) => {
            crate::print_error("", &"no images found in the given paths");
            return ExitCode::from(2);
        }
        Err(e) => {
            crate::print_error("", &e);
            return ExitCode::from(2);
        }
    };
    let session = args.config().and_then(|cfg| {
        let engine = Arc::new(loupe_dapo::build_engine(&cfg)?);
        eprintln!("{}", crate::options::model_line(&cfg, &engine));
        let profile = args.scoring.profile(&engine, images.iter().map(PathBuf::as_path))?;
        let mut session = Session::new(engine)?;
        session.set_profile(profile)?;
        Ok(session)
    });
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            crate::print_error("", &e);
            return ExitCode::from(2);
        }
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        crate::print_error(&format!("cannot create output folder {}: ", args.out.display()), &e);
        return ExitCode::from(2);
    }
    let bar = ProgressBar::new(images.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} images, {elapsed} elapsed, ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut names = HashSet::new();
    let (mut failed, mut anomalous) = (0usize, 0usize);
    for path in &images {
        bar.set_message(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        match inspect_one(&mut session, path, &args.out, &mut names) {
            Ok(d) => anomalous += usize::from(d.is_anomalous),
            Err(e) => {
                failed += 1;
                bar.suspend(|| crate::print_error("", &e));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ok = images.len() - failed;
    println!(
        "inspected {ok} of {} images ({anomalous} anomalous, {failed} failed); results in {}",
        images.len(),
        args.out.display()
    );
    if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

/// Expands folders (recursively, sorted) and keeps files as given; a missing path is an error.
fn collect_images(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, LoupeError> {
    let mut out = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut out)?;
        } else if input.exists() {
            out.push(input.clone());
        } else {
            return Err(LoupeError::io(
                input,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
            ));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoupeError> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(|e| LoupeError::io(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// A file stem not used yet in this run (`part`, `part-2`, ...), so same-named images in different folders do not
/// overwrite each other.
fn unique_stem(path: &Path, used: &mut HashSet<String>) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
    let mut name = stem.clone();
    let mut n = 2;
    while !used.insert(name.clone()) {
        name = format!("{stem}-{n}");
        n += 1;
    }
    name
}

fn inspect_one(
    session: &mut Session,
    path: &Path,
    out: &Path,
    used: &mut HashSet<String>,
) -> Result<Detection, LoupeError> {
    let image = OwnedImage::open_with_limits(path, session.engine().limits())?;
    let d = session.inspect(&image.view())?;
    let stem = unique_stem(path, used);
    let components = session.engine().components();
    write_image_outputs(out, &stem, &path.display().to_string(), &image.view(), &d, &components)?;
    Ok(d)
}
