//! A Loupe model directory: `loupe-model.json` and the files it names (see `docs/model-format.md`).

use std::path::{Path, PathBuf};

use loupe_sdk::{InputGeometry, LoupeError, Result};
use serde::Deserialize;

/// File name of the metadata inside a model directory.
pub const METADATA_FILE: &str = "loupe-model.json";

/// `loupe-model.json`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelMetadata {
    /// Always `loupe-model`.
    pub format: String,
    /// Format version (1).
    pub format_version: u32,
    /// Human-readable name.
    pub name: String,
    /// Content hash; prompt banks record it.
    pub model_id: String,
    /// Architecture name (`ViT-B-16`, ...).
    pub architecture: String,
    /// Where the weights came from.
    #[serde(default)]
    pub source: String,
    /// Dimension of the joint image/text space.
    pub embed_dim: usize,
    /// Image tower.
    pub image: ImageTower,
    /// Text tower.
    pub text: TextTower,
    /// File names, relative to the directory.
    pub files: ModelFiles,
}

/// Image tower description.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageTower {
    /// `[height, width]`.
    pub input_size: [u32; 2],
    /// Per-channel mean.
    pub mean: [f32; 3],
    /// Per-channel std.
    pub std: [f32; 3],
    /// Patch size in pixels.
    pub patch_size: u32,
    /// Patch grid `[height, width]`.
    pub grid: [usize; 2],
    /// Residual width.
    pub width: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// 1-based blocks whose outputs are the patch features.
    pub feature_layers: Vec<usize>,
    /// Deep visual prompt tokens (0 = none).
    #[serde(default)]
    pub visual_prompts: usize,
    /// `adapter` or `ln_post_proj`.
    pub patch_features: String,
}

/// Text tower description.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextTower {
    /// Tokens per prompt.
    pub context_length: usize,
    /// Residual width (= token-embedding width).
    pub width: usize,
    /// Number of blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Token vocabulary size.
    pub vocab_size: usize,
    /// Start-of-text token id.
    pub sot_token: u32,
    /// End-of-text token id.
    pub eot_token: u32,
    /// Deep text prompt tokens (0 = none).
    #[serde(default)]
    pub deep_prompts: usize,
}

/// Files of a model directory.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelFiles {
    /// Image encoder ONNX.
    pub image_encoder: String,
    /// Text encoder ONNX.
    pub text_encoder: String,
    /// Token-embedding table (safetensors).
    pub token_embedding: String,
}

/// An opened, checked model directory.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// The directory.
    pub root: PathBuf,
    /// Its metadata.
    pub meta: ModelMetadata,
}

impl ModelDir {
    /// Reads and checks `loupe-model.json`; every file it names must exist.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(LoupeError::model(
                root,
                "not a directory (expected a Loupe model directory with loupe-model.json)",
            ));
        }
        let path = root.join(METADATA_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| LoupeError::io(&path, e))?;
        let meta: ModelMetadata =
            serde_json::from_str(&text).map_err(|e| LoupeError::model(&path, format!("malformed metadata: {e}")))?;
        let dir = Self { root: root.to_path_buf(), meta };
        dir.check().map_err(|reason| LoupeError::model(&path, reason))?;
        for f in [dir.image_encoder(), dir.text_encoder(), dir.token_embedding()] {
            if !f.is_file() {
                return Err(LoupeError::model(&f, format!("missing (named in {METADATA_FILE})")));
            }
        }
        Ok(dir)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let m = &self.meta;
        let expect = |ok: bool, field: &str, expected: String, found: String| {
            if ok { Ok(()) } else { Err(format!("field `{field}`: expected {expected}, found {found}")) }
        };
        expect(m.format == "loupe-model", "format", "\"loupe-model\"".into(), format!("{:?}", m.format))?;
        expect(m.format_version == 1, "format_version", "1".into(), m.format_version.to_string())?;
        let i = &m.image;
        expect(i.patch_size > 0, "image.patch_size", "> 0".into(), i.patch_size.to_string())?;
        let grid = [(i.input_size[0] / i.patch_size.max(1)) as usize, (i.input_size[1] / i.patch_size.max(1)) as usize];
        expect(i.grid == grid, "image.grid", format!("{grid:?} (input_size / patch_size)"), format!("{:?}", i.grid))?;
        expect(!i.feature_layers.is_empty(), "image.feature_layers", "at least one layer".into(), "none".into())?;
        expect(
            i.feature_layers.iter().all(|&l| (1..=i.layers).contains(&l)),
            "image.feature_layers",
            format!("block numbers in 1..={}", i.layers),
            format!("{:?}", i.feature_layers),
        )?;
        expect(i.std.iter().all(|&s| s > 0.0), "image.std", "positive values".into(), format!("{:?}", i.std))?;
        expect(
            matches!(i.patch_features.as_str(), "adapter" | "ln_post_proj"),
            "image.patch_features",
            "\"adapter\" or \"ln_post_proj\"".into(),
            format!("{:?}", i.patch_features),
        )?;
        expect(m.embed_dim > 0, "embed_dim", "> 0".into(), m.embed_dim.to_string())?;
        let t = &m.text;
        expect(
            (t.sot_token as usize) < t.vocab_size && (t.eot_token as usize) < t.vocab_size,
            "text.sot_token/eot_token",
            format!("< vocab_size {}", t.vocab_size),
            format!("{}/{}", t.sot_token, t.eot_token),
        )?;
        expect(
            t.context_length > 2 + t.deep_prompts,
            "text.context_length",
            format!("> {}", 2 + t.deep_prompts),
            t.context_length.to_string(),
        )?;
        Ok(())
    }

    /// The geometry a backbone of this model declares.
    pub fn geometry(&self) -> InputGeometry {
        let i = &self.meta.image;
        InputGeometry {
            input_size: i.input_size,
            mean: i.mean,
            std: i.std,
            grid: i.grid,
            feature_dim: self.meta.embed_dim,
            layers: i.feature_layers.len(),
        }
    }

    /// Path of the image encoder.
    pub fn image_encoder(&self) -> PathBuf {
        self.root.join(&self.meta.files.image_encoder)
    }

    /// Path of the text encoder.
    pub fn text_encoder(&self) -> PathBuf {
        self.root.join(&self.meta.files.text_encoder)
    }

    /// Path of the token-embedding table.
    pub fn token_embedding(&self) -> PathBuf {
        self.root.join(&self.meta.files.token_embedding)
    }
}
