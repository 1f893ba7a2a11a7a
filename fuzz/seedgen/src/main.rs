//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` and the dictionary
//! `fuzz/dict/config_text.dict`, from the repository's fixtures and with its own writers (image encoders of the
//! `image` crate, `Profile::save`, safetensors). Deterministic: rerunning it rewrites the same files.
//! Run from anywhere: `cargo run --manifest-path fuzz/seedgen/Cargo.toml`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat, imageops::FilterType};
use loupe_reference::{Memory, MemoryLayer};
use loupe_sdk::fusion::{Fusion, FusionRule, ScoringMode};
use loupe_sdk::profile::{Augmentation, Calibration, ProfileMeta, ReferenceInfo, ReferenceSource};
use loupe_sdk::{ConfigFormat, LoupeConfig, Profile};
use safetensors::{Dtype, tensor::TensorView};

type Error = Box<dyn std::error::Error>;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus(target: &str) -> Result<PathBuf, Error> {
    let dir = repo().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)?;
    Ok(out)
}

/// Tiny PNG, JPEG, BMP and TIFF files of each colour type the decoders support, from a fixture image, and
/// truncated copies of one per format.
fn images() -> Result<(), Error> {
    let dir = corpus("image_decode")?;
    let fixture = repo().join("tests/fixtures/mvtec-mini/crack/exp5_num_32201.png");
    let bytes = std::fs::read(&fixture)?;
    write(&dir, "fixture-crack-gray8.png", &bytes)?;
    let src = image::load_from_memory(&bytes)?.resize_exact(12, 9, FilterType::Triangle);
    let gray = DynamicImage::ImageLuma8(src.to_luma8());
    let rgb = DynamicImage::ImageRgb8(src.to_rgb8());
    let mut rgba = src.to_rgba8();
    rgba.pixels_mut().enumerate().for_each(|(i, p)| p.0[3] = (i * 7) as u8);
    let rgba = DynamicImage::ImageRgba8(rgba);
    let gray16 = DynamicImage::ImageLuma16(src.to_luma16());
    let rgb16 = DynamicImage::ImageRgb16(src.to_rgb16());
    let gray_alpha = DynamicImage::ImageLumaA8(src.to_luma_alpha8());
    let cases: [(&str, &DynamicImage, ImageFormat); 16] = [
        ("gray8.png", &gray, ImageFormat::Png),
        ("rgb8.png", &rgb, ImageFormat::Png),
        ("rgba8.png", &rgba, ImageFormat::Png),
        ("gray16.png", &gray16, ImageFormat::Png),
        ("rgb16.png", &rgb16, ImageFormat::Png),
        ("gray-alpha8.png", &gray_alpha, ImageFormat::Png),
        ("gray8.jpg", &gray, ImageFormat::Jpeg),
        ("rgb8.jpg", &rgb, ImageFormat::Jpeg),
        ("gray8.bmp", &gray, ImageFormat::Bmp),
        ("rgb8.bmp", &rgb, ImageFormat::Bmp),
        ("rgba8.bmp", &rgba, ImageFormat::Bmp),
        ("gray8.tiff", &gray, ImageFormat::Tiff),
        ("rgb8.tiff", &rgb, ImageFormat::Tiff),
        ("rgba8.tiff", &rgba, ImageFormat::Tiff),
        ("gray16.tiff", &gray16, ImageFormat::Tiff),
        ("rgb16.tiff", &rgb16, ImageFormat::Tiff),
    ];
    for (name, img, format) in cases {
        let bytes = encode(img, format)?;
        write(&dir, name, &bytes)?;
        if matches!(name, "rgb8.png" | "rgb8.jpg" | "rgb8.bmp" | "rgb8.tiff") {
            write(&dir, &format!("truncated-{name}"), &bytes[..bytes.len() / 2])?;
            write(&dir, &format!("header-only-{name}"), &bytes[..bytes.len().min(40)])?;
        }
    }
    Ok(())
}

/// A few raw inputs for the structured targets (their bytes are read by `arbitrary`).
fn structured() -> Result<(), Error> {
    for (target, lengths) in [("image_view", [8usize, 40, 300]), ("plugin_declaration", [16, 96, 400])] {
        let dir = corpus(target)?;
        for (k, n) in lengths.into_iter().enumerate() {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + k * 11) as u8).collect();
            write(&dir, &format!("pattern-{n}"), &bytes)?;
        }
        write(&dir, "zeros-64", &[0; 64])?;
    }
    Ok(())
}

/// The ```toml / ```yaml / ```json blocks of a Markdown file.
fn code_blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    text.split(&fence).skip(1).filter_map(|rest| rest.split("```").next().map(str::to_string)).collect()
}

/// The configuration examples of the README and docs (format byte 0 TOML, 1 JSON, 2 YAML first), the README's
/// example also as JSON and YAML, and the defaults.
fn configs() -> Result<(), Error> {
    let dir = corpus("config_text")?;
    let with_format = |byte: u8, text: &str| -> Vec<u8> { std::iter::once(byte).chain(text.bytes()).collect() };
    let mut readme_config = None;
    for doc in ["README.md", "docs/gpu.md", "docs/plugins.md", "docs/reference.md"] {
        let text = std::fs::read_to_string(repo().join(doc))?;
        let stem = Path::new(doc).file_stem().and_then(|s| s.to_str()).unwrap_or("doc").to_lowercase();
        for (k, block) in code_blocks(&text, "toml").iter().enumerate() {
            write(&dir, &format!("{stem}-{k}.toml"), &with_format(0, block))?;
            if doc == "README.md" && readme_config.is_none() {
                readme_config = LoupeConfig::from_text(block, ConfigFormat::Toml).ok();
            }
        }
        for (lang, byte) in [("json", 1u8), ("yaml", 2)] {
            for (k, block) in code_blocks(&text, lang).iter().enumerate() {
                write(&dir, &format!("{stem}-{k}.{lang}"), &with_format(byte, block))?;
            }
        }
    }
    let cfg = readme_config.ok_or("the README's TOML example does not parse as a configuration")?;
    let json = serde_json::to_string_pretty(&cfg)?;
    write(&dir, "readme-as.json", &with_format(1, &json))?;
    // JSON is YAML too; and a block-style YAML file.
    write(&dir, "readme-as-flow.yaml", &with_format(2, &json))?;
    let yaml = "model:\n  dir: models/m\nprompts:\n  defects:\n    - hole\n    - scratch\npostprocess:\n  \
                image_threshold: 0.5\n  smoothing_sigma: 4.0\n  map_size: model\nreference:\n  fusion: harmonic\n  \
                text_weight: 0.25\nplugins:\n  use_env: false\n";
    write(&dir, "block.yaml", &with_format(2, yaml))?;
    let defaults = serde_json::to_string(&LoupeConfig::default())?;
    write(&dir, "defaults.json", &with_format(1, &defaults))?;
    write(&dir, "empty.toml", &[0])?;
    dictionary()
}

/// Every property name and enum value of the configuration's JSON Schema, as a libFuzzer dictionary.
fn dictionary() -> Result<(), Error> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    if k == "properties"
                        && let Some(props) = child.as_object()
                    {
                        out.extend(props.keys().cloned());
                    }
                    if (k == "enum" || k == "const") && !child.is_object() {
                        let values = child.as_array().cloned().unwrap_or_else(|| vec![child.clone()]);
                        out.extend(values.iter().filter_map(|e| e.as_str().map(str::to_string)));
                    }
                    walk(child, out);
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut words = BTreeSet::new();
    walk(&LoupeConfig::json_schema(), &mut words);
    let mut text = String::from(
        "# libFuzzer dictionary for config_text: the configuration's field names and enum values (from its JSON\n\
         # Schema, written by fuzz/seedgen) and a few tokens of TOML, JSON and YAML.\n",
    );
    for w in &words {
        text.push_str(&format!("\"{}\"\n", w.escape_default()));
    }
    for t in
        ["[", "]", "[[", "]]", "{", "}", " = ", ": ", "\\x0a- ", "true", "false", "null", "1e400", "-0.0", "nan", "inf"]
    {
        text.push_str(&format!("\"{t}\"\n"));
    }
    let dir = repo().join("fuzz/dict");
    std::fs::create_dir_all(&dir)?;
    write(&dir, "config_text.dict", text.as_bytes())
}

/// The fixture models' `loupe-model.json` and the one in docs/model-format.md.
fn metadata() -> Result<(), Error> {
    let dir = corpus("model_metadata")?;
    for (name, path) in [
        ("parity.json", "tests/fixtures/parity/model/loupe-model.json"),
        ("parity-trained.json", "tests/fixtures/parity-trained/model/loupe-model.json"),
        ("default-model.json", "plugins/default-model/model/loupe-model.json"),
    ] {
        write(&dir, name, &std::fs::read(repo().join(path))?)?;
    }
    let doc = std::fs::read_to_string(repo().join("docs/model-format.md"))?;
    for (k, block) in code_blocks(&doc, "json").iter().enumerate() {
        write(&dir, &format!("model-format-doc-{k}.json"), block.as_bytes())?;
    }
    Ok(())
}

fn safetensors_bytes(
    tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, Error> {
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| Ok((name.to_string(), TensorView::new(*dtype, shape.clone(), data)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    Ok(safetensors::serialize(views, metadata)?)
}

fn f32_bytes(n: usize, seed: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (((i * 7 + seed) % 13) as f32 / 13.0 - 0.4).to_le_bytes()).collect()
}

/// The fixture banks (mode byte 0) and small token-embedding tables (mode 1: shape from the file; mode 3: shape
/// from the next 4 bytes).
fn banks() -> Result<(), Error> {
    let dir = corpus("prompt_bank")?;
    for (name, path) in [
        ("bank-parity", "tests/fixtures/parity/bank.safetensors"),
        ("bank-parity-trained", "tests/fixtures/parity-trained/bank.safetensors"),
    ] {
        let bytes: Vec<u8> = std::iter::once(0).chain(std::fs::read(repo().join(path))?).collect();
        write(&dir, name, &bytes)?;
    }
    let table = safetensors_bytes(&[("token_embedding", Dtype::F32, vec![8, 4], f32_bytes(32, 1))], None)?;
    write(&dir, "token-table-declared-shape", &[&[1u8][..], &table].concat())?;
    let shape = [8u16.to_le_bytes(), 4u16.to_le_bytes()].concat();
    write(&dir, "token-table-given-shape", &[&[3u8][..], &shape, &table].concat())?;
    Ok(())
}

/// Profiles written with `Profile::save`: metadata only, and one with a two-layer memory, calibration,
/// vocabulary and fusion.
fn profiles() -> Result<(), Error> {
    let dir = corpus("profile_file")?;
    let tmp = std::env::temp_dir().join(format!("loupe-seedgen-{}.safetensors", std::process::id()));
    let meta = ProfileMeta {
        name: "customer-a".into(),
        model_id: "30086d39fc3f2401".into(),
        model_name: "tiny-random-seed0".into(),
        layers: 2,
        dim: 4,
        grid: [2, 2],
        vocabulary: None,
        fusion: None,
        calibration: None,
        references: None,
        created_by: "loupe-fuzz-seedgen".into(),
    };
    let bare = Profile { meta: meta.clone(), memory: None };
    bare.save(&tmp)?;
    write(&dir, "meta-only.safetensors", &std::fs::read(&tmp)?)?;

    let (dim, rows) = (4usize, [3usize, 2]);
    let layers = rows
        .iter()
        .enumerate()
        .map(|(l, &n)| {
            let values: Vec<f32> = (0..n * dim).map(|i| ((i + l) % 5) as f32 - 1.5).collect();
            let owners: Vec<u32> = (0..n as u32).map(|i| i.min(1)).collect();
            MemoryLayer::new(values, owners, dim)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let memory = Memory::from_layers(layers, dim)?;
    let image = |name: &str| ReferenceSource { name: name.into(), sha256: "00".repeat(32), size: [12, 9] };
    let full = Profile {
        meta: ProfileMeta {
            vocabulary: Some(vec!["hole".into(), "scratch".into()]),
            fusion: Some(Fusion { rule: FusionRule::Harmonic, text_weight: 0.25 }),
            calibration: Some(Calibration {
                mode: ScoringMode::Golden,
                image_threshold: 0.42,
                pixel_threshold: 0.37,
                method: "fpr".into(),
                fpr: Some(0.01),
                good_images: 2,
                defective_images: 0,
                measured: BTreeMap::from([("image_fpr".to_string(), 0.0)]),
            }),
            references: Some(ReferenceInfo {
                images: vec![image("good-1.png"), image("good-2.png")],
                augmentation: Augmentation::Flips,
                coreset_fraction: 1.0,
                coreset_seed: 7,
                rows_per_layer: rows.to_vec(),
                scale: 0.125,
                scale_samples: 4,
            }),
            ..meta
        },
        memory: Some(memory),
    };
    full.save(&tmp)?;
    let bytes = std::fs::read(&tmp)?;
    write(&dir, "golden-calibrated.safetensors", &bytes)?;
    write(&dir, "truncated-golden.safetensors", &bytes[..bytes.len() - 9])?;
    std::fs::remove_file(&tmp)?;
    Ok(())
}

fn main() -> Result<(), Error> {
    images()?;
    structured()?;
    configs()?;
    metadata()?;
    banks()?;
    profiles()?;
    Ok(())
}
