//! `loupe profile`: make a product profile from good reference images, or show what one holds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use loupe_sdk::profile::{Augmentation, Profile, ProfileOptions, create};
use loupe_sdk::{Fusion, FusionRule, LoupeConfig, LoupeError};

use crate::options::EngineOptions;
use crate::references;

/// Arguments of `loupe profile`.
#[derive(Args)]
pub struct ProfileArgs {
    #[command(subcommand)]
    command: ProfileCommand,
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Make a profile from good reference images (golden samples) for the configured model.
    Create(CreateArgs),
    /// Print a profile's metadata (JSON) and the size of its memory.
    Show {
        /// The profile file.
        file: PathBuf,
    },
}

/// Arguments of `loupe profile create`.
#[derive(Args)]
struct CreateArgs {
    /// Good reference images: folders (their image files), files or quoted glob patterns.
    #[arg(long, required = true, num_args = 1.., value_name = "PATH")]
    references: Vec<String>,
    /// Keep K of the references, spread evenly over their sorted list.
    #[arg(long, value_name = "K")]
    shots: Option<usize>,
    /// The product's defect words, comma-separated (stored in the profile; default: the engine's vocabulary).
    #[arg(long, value_delimiter = ',')]
    defects: Option<Vec<String>>,
    /// Views added per reference: `none`, `flips` (4 views) or `rotations` (8).
    #[arg(long, value_parser = crate::scoring::parse_augmentation, default_value = "none")]
    augment: Augmentation,
    /// Share of the reference patches the greedy coreset keeps, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    coreset: f32,
    /// Seed of the coreset.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Fusion rule stored in the profile: mean, harmonic, layer_sum or reference (default: the configuration's).
    #[arg(long, value_parser = crate::scoring::parse_fusion)]
    fusion: Option<FusionRule>,
    /// Text weight stored with `--fusion` (default: the configuration's `reference.text_weight`).
    #[arg(long, requires = "fusion")]
    text_weight: Option<f32>,
    /// The profile's name (default: the output file's stem).
    #[arg(long)]
    name: Option<String>,
    /// Where to write the profile (`.safetensors`).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    engine: EngineOptions,
}

/// Runs `loupe profile`. Exit status: 0 done, 2 nothing written.
pub fn run(args: &ProfileArgs) -> ExitCode {
    let result = match &args.command {
        ProfileCommand::Create(a) => create_profile(a),
        ProfileCommand::Show { file } => show(file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::print_error("", &e);
            ExitCode::from(2)
        }
    }
}

fn create_profile(args: &CreateArgs) -> Result<(), LoupeError> {
    let started = Instant::now();
    let cfg: LoupeConfig = args.engine.validate(&args.engine.load()?)?;
    let engine = loupe_dapo::build_engine(&cfg)?;
    eprintln!("{}", crate::options::model_line(&cfg, &engine));
    let images = references::decode(&references::select(&args.references, args.shots)?)?;
    let refs = references::views(&images);
    let name = args.name.clone().unwrap_or_else(|| {
        args.out.file_stem().map_or_else(|| "profile".to_string(), |s| s.to_string_lossy().into_owned())
    });
    let fusion =
        args.fusion.map(|rule| Fusion { rule, text_weight: args.text_weight.unwrap_or(cfg.reference.text_weight) });
    let options = ProfileOptions {
        name,
        vocabulary: args.defects.clone(),
        fusion,
        augmentation: args.augment,
        coreset_fraction: args.coreset,
        seed: args.seed,
    };
    eprintln!(
        "encoding {} reference images ({} views each){}",
        refs.len(),
        args.augment.views(),
        if args.coreset < 1.0 { format!(", coreset {}", args.coreset) } else { String::new() }
    );
    let profile = create(&engine, &refs, &options)?;
    // Bind once before writing: a profile the engine would refuse is never written.
    engine.bind_profile(profile.clone())?;
    profile.save(&args.out)?;
    let info = profile.meta.references.as_ref();
    println!(
        "wrote {}: profile `{}` for model {} ({}), {} reference images, {} memory rows per layer, {:.1} MB, scale \
         {:.4}, in {:.1} s",
        args.out.display(),
        profile.meta.name,
        profile.meta.model_name,
        profile.meta.model_id,
        info.map_or(0, |i| i.images.len()),
        info.and_then(|i| i.rows_per_layer.first()).copied().unwrap_or(0),
        profile.memory_bytes() as f64 / 1e6,
        info.map_or(0.0, |i| i.scale),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn show(file: &std::path::Path) -> Result<(), LoupeError> {
    let profile = Profile::load(file)?;
    let mut value = serde_json::to_value(&profile.meta)
        .map_err(|e| LoupeError::profile(file, format!("cannot print the metadata: {e}")))?;
    value["memory_bytes"] = serde_json::json!(profile.memory_bytes());
    println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    Ok(())
}
