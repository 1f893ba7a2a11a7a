//! A Loupe model directory: `loupe-model.json` and the files it names (see `docs/model-format.md`), read from a
//! folder on disk or from memory (the embedded default model) through one [`ModelSource`].

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use loupe_sdk::config::Precision;
use loupe_sdk::{InputGeometry, Limits, LoupeError, Result};
use serde::Deserialize;

/// Most blocks a tower may declare.
const MAX_LAYERS: usize = 1024;
/// Largest residual width, head count or joint dimension a model may declare.
const MAX_WIDTH: usize = 65536;
/// Most text tokens (or deep visual prompt tokens) a model may declare.
const MAX_CONTEXT: usize = 4096;
/// Largest token vocabulary a model may declare.
const MAX_VOCAB: usize = 16 << 20;

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
    /// How the text encoder runs the deep prompts, and so how a prompt is laid out (`loupe` when absent).
    #[serde(default)]
    pub prompt_convention: PromptConvention,
    /// Blocks that receive their own deep prompts (all `layers` when absent): the bank's `text_deep_prompts` is
    /// `[deep_prompt_layers, deep_prompts, width]`.
    #[serde(default)]
    pub deep_prompt_layers: Option<usize>,
}

impl TextTower {
    /// Blocks that receive their own deep prompts.
    pub fn deep_layers(&self) -> usize {
        self.deep_prompt_layers.unwrap_or(self.layers)
    }

    /// Positions a prompt reserves after SOT for the deep prompts: `deep_prompts` in Loupe's convention, none in
    /// the DAPO authors' (their text tower inserts the deep prompts into the sequence instead).
    pub fn placeholders(&self) -> usize {
        match self.prompt_convention {
            PromptConvention::Loupe => self.deep_prompts,
            PromptConvention::DapoAuthors => 0,
        }
    }
}

/// The text-side computation a model's `text_encoder.onnx` was exported with (`docs/model-format.md`, section 1).
/// The encoder graph itself does the computation; the SDK only lays prompts out to match.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PromptConvention {
    /// Loupe's: deep prompts replace placeholder tokens right after SOT, causal attention mask.
    #[default]
    Loupe,
    /// The DAPO authors' code (`boschresearch/defect-aware-prompt-optimization`): deep prompts inserted after SOT,
    /// no attention mask, pooled at the prompt's own end-of-text index (`loupe_tools.import_dapo` writes it).
    DapoAuthors,
}

impl PromptConvention {
    /// The name used in `loupe-model.json` and in prompt-bank metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Loupe => "loupe",
            Self::DapoAuthors => "dapo-authors",
        }
    }
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
    /// The image encoder quantised to int8 (QDQ; `python -m loupe_tools.quantize`), used with
    /// `model.precision = "int8"`. Not part of the model id: its features approximate the fp32 encoder's, so the
    /// model's prompt banks serve both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_encoder_int8: Option<String>,
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
        self.read_within(name, &Limits::default())
    }

    /// As [`ModelSource::read`], refusing a file on disk over `limits.max_file_bytes` before reading it.
    pub fn read_within(&self, name: &str, limits: &Limits) -> Result<Cow<'_, [u8]>> {
        match self {
            Self::Dir(root) => limits.read_file(&root.join(name)).map(Cow::Owned),
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
    /// What it was checked against, and what its files are read within.
    limits: Limits,
}

impl ModelDir {
    /// Reads and checks `loupe-model.json` of the directory `root` within the default [`Limits`]; every file it
    /// names must exist.
    pub fn open(root: &Path) -> Result<Self> {
        Self::open_with_limits(root, &Limits::default())
    }

    /// As [`ModelDir::open`], within `limits`: the input size and grid the metadata declares, and the size of
    /// every file read.
    pub fn open_with_limits(root: &Path, limits: &Limits) -> Result<Self> {
        if !root.is_dir() {
            return Err(LoupeError::model(
                root,
                "not a directory (expected a Loupe model directory with loupe-model.json)",
            ));
        }
        Self::from_source_with_limits(ModelSource::Dir(root.to_path_buf()), limits)
    }

    /// The embedded default model (feature `default-model`).
    #[cfg(feature = "default-model")]
    pub fn embedded() -> Result<Self> {
        Self::from_source(ModelSource::embedded())
    }

    /// Reads and checks `loupe-model.json` of `source` within the default [`Limits`]; every file it names must
    /// exist.
    pub fn from_source(source: ModelSource) -> Result<Self> {
        Self::from_source_with_limits(source, &Limits::default())
    }

    /// As [`ModelDir::from_source`], within `limits`. The declared sizes are checked before any model runtime
    /// sees them: a model runtime given a 100000 x 100000 input spends seconds before it fails.
    pub fn from_source_with_limits(source: ModelSource, limits: &Limits) -> Result<Self> {
        let path = source.label(METADATA_FILE);
        let bytes = source.read_within(METADATA_FILE, limits)?;
        let meta: ModelMetadata =
            serde_json::from_slice(&bytes).map_err(|e| LoupeError::model(&path, format!("malformed metadata: {e}")))?;
        drop(bytes);
        let model = Self { source, meta, limits: limits.clone() };
        model.check().map_err(|reason| LoupeError::model(&path, reason))?;
        model.check_limits(&path)?;
        let files = &model.meta.files;
        for name in [&files.image_encoder, &files.text_encoder, &files.token_embedding]
            .into_iter()
            .chain(&files.image_encoder_int8)
        {
            if !model.source.contains(name) {
                return Err(LoupeError::model(model.source.label(name), format!("missing (named in {METADATA_FILE})")));
            }
        }
        Ok(model)
    }

    /// The bytes of file `name` of the model (one of those `loupe-model.json` names).
    pub fn read(&self, name: &str) -> Result<Cow<'_, [u8]>> {
        self.source.read_within(name, &self.limits)
    }

    /// The limits the model was opened with.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The declared input size and grid against `limits.max_model_input` and `limits.max_grid_cells`.
    fn check_limits(&self, path: &Path) -> Result<()> {
        let i = &self.meta.image;
        let what = |field: &str| format!("model {}: `{field}`", path.display());
        let side = u64::from(i.input_size[0].max(i.input_size[1]));
        Limits::check(what("image.input_size"), "max_model_input", side, u64::from(self.limits.max_model_input))?;
        let cells = (i.grid[0] as u64).saturating_mul(i.grid[1] as u64);
        Limits::check(what("image.grid (cells)"), "max_grid_cells", cells, self.limits.max_grid_cells)
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
        expect(
            i.grid[0] > 0 && i.grid[1] > 0,
            "image.input_size",
            "at least one patch".into(),
            format!("{:?}", i.input_size),
        )?;
        // Sizes no CLIP comes near, refused before they reach an allocation or a model runtime.
        let bounded = |field: &str, value: usize, max: usize| {
            expect((1..=max).contains(&value), field, format!("1 to {max}"), value.to_string())
        };
        bounded("image.layers", i.layers, MAX_LAYERS)?;
        bounded("image.width", i.width, MAX_WIDTH)?;
        bounded("image.heads", i.heads, MAX_WIDTH)?;
        bounded("embed_dim", m.embed_dim, MAX_WIDTH)?;
        bounded("text.layers", m.text.layers, MAX_LAYERS)?;
        bounded("text.width", m.text.width, MAX_WIDTH)?;
        bounded("text.heads", m.text.heads, MAX_WIDTH)?;
        bounded("text.context_length", m.text.context_length, MAX_CONTEXT)?;
        bounded("text.vocab_size", m.text.vocab_size, MAX_VOCAB)?;
        expect(
            i.visual_prompts <= MAX_CONTEXT,
            "image.visual_prompts",
            format!("0 to {MAX_CONTEXT}"),
            i.visual_prompts.to_string(),
        )?;
        let t = &m.text;
        expect(
            (t.sot_token as usize) < t.vocab_size && (t.eot_token as usize) < t.vocab_size,
            "text.sot_token/eot_token",
            format!("< vocab_size {}", t.vocab_size),
            format!("{}/{}", t.sot_token, t.eot_token),
        )?;
        expect(
            t.context_length > 2 + t.placeholders(),
            "text.context_length",
            format!("> {}", 2 + t.placeholders()),
            t.context_length.to_string(),
        )?;
        if let Some(d) = t.deep_prompt_layers {
            expect(
                (1..=t.layers).contains(&d),
                "text.deep_prompt_layers",
                format!("1 to text.layers ({})", t.layers),
                d.to_string(),
            )?;
        }
        Ok(())
    }

    /// The image encoder file of `precision`: the fp32 encoder, or the int8 one the model must then name.
    pub fn image_encoder_file(&self, precision: Precision) -> Result<&str> {
        match precision {
            Precision::Fp32 => Ok(&self.meta.files.image_encoder),
            Precision::Int8 => self.meta.files.image_encoder_int8.as_deref().ok_or_else(|| LoupeError::Config {
                file: None,
                field: "model.precision".into(),
                expected: format!(
                    "\"fp32\", or a model with an int8 image encoder (files.image_encoder_int8 in {}; written by \
                     python -m loupe_tools.quantize)",
                    self.label(METADATA_FILE).display()
                ),
                found: "\"int8\"".into(),
            }),
        }
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
