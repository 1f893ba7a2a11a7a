//! Inspect images from Rust: build an engine from a model directory and a prompt bank, run detection and
//! segmentation, print the score and regions, and write an overlay into the current folder.
//!
//! ```text
//! cargo run -p loupe-dapo --example inspect -- tests/fixtures/parity/model \
//!     tests/fixtures/parity/bank.safetensors tests/fixtures/parity/images/gray_hole.png
//! ```

use std::path::PathBuf;

use loupe_sdk::{LoupeConfig, OwnedImage, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [model, bank, images @ ..] = args.as_slice() else {
        return Err("usage: inspect MODEL_DIR BANK IMAGE...".into());
    };
    let mut config = LoupeConfig::default();
    config.model.dir = Some(model.clone());
    config.prompts.bank = Some(bank.clone());
    // Add a defect word the bank never trained: DAPO encodes it with the learned context.
    let mut words = loupe_dapo::build_engine(&config)?.vocabulary().to_vec();
    words.push("burr".into());
    config.prompts.defects = Some(words);
    let engine = loupe_dapo::build_engine(&config)?;

    for path in images {
        let image = OwnedImage::open(path)?;
        let result = engine.inspect_one(&image.view())?;
        println!(
            "{}: score {:.3} ({}), most likely type {}",
            path.display(),
            result.score,
            if result.is_anomalous { "anomalous" } else { "normal" },
            result.image_type
        );
        for r in &result.regions {
            println!("  region at {:?}, {} px, {} (max score {:.2})", r.bbox, r.area, r.defect_type, r.max_score);
        }
        let layers = engine.backbone().geometry().layers as f32;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let out = PathBuf::from(format!("{stem}_overlay.png"));
        render::overlay(&image.view().to_rgb(), &result, layers).save(&out)?;
        println!("  overlay written to {}", out.display());
    }
    Ok(())
}
