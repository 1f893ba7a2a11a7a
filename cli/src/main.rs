//! `loupe`: inspect images for defects, evaluate on data sets, make and calibrate product profiles, benchmark,
//! list plugins, print the configuration schema.

mod bench;
mod bench_reference;
mod calibrate;
mod eval;
mod inspect;
mod options;
mod plugins;
mod profile;
mod references;
mod scoring;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Zero-shot defect detection and segmentation (DAPO).
#[derive(Parser)]
#[command(name = "loupe", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect images (files or folders): write a result JSON, a heatmap, a mask and an overlay per image.
    Inspect(inspect::InspectArgs),
    /// Print the JSON Schema of the configuration file.
    Schema,
    /// Evaluate on an MVTec-layout data set: the field's metrics, report.json, report.md and plots.
    Eval(eval::EvalArgs),
    /// Time the backbone and the whole pipeline per image (JSON on stdout).
    Bench(bench::BenchArgs),
    /// List loaded plugin libraries and the registered components.
    Plugins(plugins::PluginsArgs),
    /// Time golden-sample scoring on given vectors per coreset fraction (JSON on stdout), or write such vectors.
    BenchReference(bench_reference::BenchReferenceArgs),
    /// Make a product profile from good reference images (golden samples), or show one.
    Profile(profile::ProfileArgs),
    /// Set a profile's image and pixel thresholds from good (and defective) images.
    Calibrate(calibrate::CalibrateArgs),
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::new().filter_or("LOUPE_LOG", "warn")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Plugins(args) => plugins::run(&args),
        Command::Profile(args) => profile::run(&args),
        Command::BenchReference(args) => bench_reference::run(&args),
        Command::Calibrate(args) => calibrate::run(&args),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&loupe_sdk::LoupeConfig::json_schema()).unwrap_or_default());
            ExitCode::SUCCESS
        }
    }
}

/// Prints an error the way every subcommand does.
fn print_error(context: &str, err: &dyn std::fmt::Display) {
    eprintln!("error: {context}{err}");
}

/// Where outputs go when `--out` is not given.
fn default_out() -> PathBuf {
    PathBuf::from("loupe-out")
}
