//! A Loupe model directory: `loupe-model.json` and the files it names (see `docs/model-format.md`), read from a
//! folder on disk or from memory (the embedded default model) through one [`ModelSource`].

use std::borrow::Cow;
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

/// How errors and messages name the embedded default model: its files read
/// `<embedded default model>/image_encoder.onnx`.
pub const EMBEDDED_LABEL: &str = "embedded default model";

/// How errors name file `name` of the in-memory model called `label`: `<label>/name`.
pub fn memory_label(label: &str, name: &str) -> PathBuf {
    Path::new(&format!("<{label}>")).join(name)
}

/// One file of an in-memory model.
#[derive(Clone)]
pub struct MemoryFile {
    /// File name, as `loupe-model.json` names it.
    pub name: String,
    /// Contents; borrowed for data compiled into the binary.
    pub bytes: Cow<'static, [u8]>,
}

impl std::fmt::Debug for MemoryFile {
    // The bytes are megabytes of weights: show their size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({} bytes)", self.name, self.bytes.len())
    }
}

/// Where the files of a model come from. Every loader reads through [`ModelSource::read`], so a model on disk and
/// one in memory take the same code path, and errors name the file by [`ModelSource::label`].
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// A model directory on disk.
    Dir(PathBuf),
    /// Files held in memory, by name.
    Memory {
        /// What errors call the model (`embedded default model`); files read `<label>/name`.
        label: String,
        /// The files, `loupe-model.json` among them.
        files: Vec<MemoryFile>,
    },
}

impl ModelSource {
    /// The embedded default model (crate `loupe-default-model`), borrowed: nothing is copied.
    #[cfg(feature = "default-model")]
    pub fn embedded() -> Self {
        let files = loupe_default_model::model_files()
            .iter()
            .map(|f| MemoryFile { name: f.name.to_string(), bytes: Cow::Borrowed(f.bytes) })
            .collect();
        Self::Memory { label: EMBEDDED_LABEL.to_string(), files }
    }

    /// How errors name the file `name` of this model: its path, or `<label>/name` in memory.
    pub fn label(&self, name: &str) -> PathBuf {
        match self {
            Self::Dir(root) => root.join(name),
            Self::Memory { label, .. } => memory_label(label, name),
        }
    }

    /// The directory, or the in-memory model's label, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::Dir(root) => root.display().to_string(),
            Self::Memory { label, .. } => label.clone(),
        }
    }

    /// Whether the model has a file `name`.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::Dir(root) => root.join(name).is_file(),
            Self::Memory { files, .. } => files.iter().any(|f| f.name == name),
        }
    }

    /// The bytes of file `name`; an error naming the file if it cannot be read or does not exist.
    pub fn read(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        match self {
            Self::Dir(root) => {
                let path = root.join(name);
                std::fs::read(&path).map(Cow::Owned).map_err(|e| LoupeError::io(&path, e))
            }
            Self::Memory { files, .. } => files
                .iter()
                .find(|f| f.name == name)
                .map(|f| Cow::Borrowed(&*f.bytes))
                .ok_or_else(|| LoupeError::model(self.label(name), "missing from the in-memory model")),
        }
    }
}

/// An opened, checked model: its metadata and where its files are.
#[derive(Clone, Debug)]
pub struct ModelDir {
    /// Where the files are read from.
    pub source: ModelSource,
    /// Its metadata.
    pub meta: ModelMetadata,
}

impl ModelDir {
    /// Reads and checks `loupe-model.json` of the directory `root`; every file it names must exist.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.is_dir() {
            return Err(LoupeError::model(
                root,
                "not a directory (expected a Loupe model directory with loupe-model.json)",
            ));
        }
        Self::from_source(ModelSource::Dir(root.to_path_buf()))
    }

    /// The embedded default model (feature `default-model`).
    #[cfg(feature = "default-model")]
    pub fn embedded() -> Result<Self> {
        Self::from_source(ModelSource::embedded())
    }

    /// Reads and checks `loupe-model.json` of `source`; every file it names must exist.
    pub fn from_source(source: ModelSource) -> Result<Self> {
        let path = source.label(METADATA_FILE);
        let bytes = source.read(METADATA_FILE)?;
        let meta: ModelMetadata =
            serde_json::from_slice(&bytes).map_err(|e| LoupeError::model(&path, format!("malformed metadata: {e}")))?;
        drop(bytes);
        let model = Self { source, meta };
        model.check().map_err(|reason| LoupeError::model(&path, reason))?;
        let files = &model.meta.files;
        for name in [&files.image_encoder, &files.text_encoder, &files.token_embedding] {
            if !model.source.contains(name) {
                return Err(LoupeError::model(model.source.label(name), format!("missing (named in {METADATA_FILE})")));
            }
        }
        Ok(model)
    }

    /// The bytes of file `name` of the model (one of those `loupe-model.json` names).
    pub fn read(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        self.source.read(name)
    }

    /// How errors name file `name`: its path, or `<embedded default model>/name` for the embedded model.
    pub fn label(&self, name: &str) -> PathBuf {
        self.source.label(name)
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

    /// Path (or in-memory label) of the image encoder.
    pub fn image_encoder(&self) -> PathBuf {
        self.label(&self.meta.files.image_encoder)
    }

    /// Path (or in-memory label) of the text encoder.
    pub fn text_encoder(&self) -> PathBuf {
        self.label(&self.meta.files.text_encoder)
    }

    /// Path (or in-memory label) of the token-embedding table.
    pub fn token_embedding(&self) -> PathBuf {
        self.label(&self.meta.files.token_embedding)
    }
}
