//! Configuration: serde structs with defaults, loaded from a TOML/JSON/YAML file with `LOUPE_*` environment
//! overrides (the `config` crate), validated against the JSON Schema that schemars derives from these structs.
//!
//! Environment overrides use a double underscore between levels: `LOUPE_POSTPROCESS__SMOOTHING_SIGMA=4`,
//! `LOUPE_PROMPTS__DEFECTS=hole,scratch`; the top-level `profile` is `LOUPE_PROFILE`. Other variables without `__`
//! (`LOUPE_PLUGIN_PATH`, `LOUPE_LOG`) are not configuration fields and are left alone. Relative paths in a file are relative to that file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{LoupeError, Result};
use crate::fusion::{Fusion, FusionRule};
use crate::limits::Limits;
use crate::thresholding::SegmentRule;

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoupeConfig {
    /// The backbone model.
    pub model: ModelConfig,
    /// The prompt bank and the defect vocabulary.
    pub prompts: PromptConfig,
    /// Post-processing: thresholds, smoothing, map size.
    pub postprocess: PostprocessConfig,
    /// Engine settings.
    pub engine: EngineConfig,
    /// Which registered component fills each role.
    pub components: ComponentsConfig,
    /// Shared-library plugins to load.
    pub plugins: PluginsConfig,
    /// A product profile (`loupe profile create`): vocabulary, calibrated thresholds, fusion settings and golden
    /// samples, made for this model. It becomes the engine's default profile; sessions can choose others.
    pub profile: Option<PathBuf>,
    /// Reference-based scoring: fusion with the text evidence, mutual scoring (`docs/reference.md`).
    pub reference: ReferenceConfig,
    /// Resource limits checked before work starts: image, batch, vocabulary, model and file sizes
    /// (`docs/reliability.md`).
    pub limits: Limits,
}

/// Reference-based scoring. Golden samples come from the active profile; with none, mutual scoring (when on)
/// compares each image with the other images of its batch, or of a session's last `mutual_window` images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceConfig {
    /// How reference and text evidence combine: `mean` (WinCLIP+), `harmonic` (PromptAD), `layer_sum`
    /// (APRIL-GAN) or `reference` (reference evidence alone; the text still names the defect types). A profile's
    /// own setting takes precedence.
    pub fusion: FusionRule,
    /// Weight of the text evidence in `mean` and `harmonic`; the reference evidence gets `1 - text_weight`.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub text_weight: f32,
    /// Image score above which an image is anomalous when reference evidence is fused (a profile's calibrated
    /// threshold takes precedence). Unset: half the fused score's range (0.5 for `mean`).
    #[schemars(range(min = 0.0))]
    pub image_threshold: Option<f32>,
    /// Fused anomaly-map value above which a pixel is anomalous (a profile's calibrated threshold takes
    /// precedence). Unset: half the fused map's range (0.5 for `mean`).
    #[schemars(range(min = 0.0))]
    pub pixel_threshold: Option<f32>,
    /// Mutual scoring (zero-shot) when the active profile holds no golden samples: each image against the other
    /// images of its batch, or (one image at a time, in a session) the session's last `mutual_window` images.
    pub mutual: bool,
    /// Images a session keeps for mutual scoring of a stream. Memory: window x layers x cells x dim x 4 bytes.
    #[schemars(range(min = 1, max = 4096))]
    pub mutual_window: usize,
    /// Share of the per-image nearest-patch distances averaged into a patch's mutual score (the lowest ones).
    #[schemars(range(min = 0.01, max = 1.0))]
    pub mutual_fraction: f32,
    /// Fewest other images a mutual score needs: a smaller batch is refused, and a session scores with text alone
    /// until its window holds this many images.
    #[schemars(range(min = 1, max = 4096))]
    pub mutual_min_pool: usize,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        Self {
            fusion: FusionRule::Mean,
            text_weight: crate::fusion::DEFAULT_TEXT_WEIGHT,
            image_threshold: None,
            pixel_threshold: None,
            mutual: false,
            mutual_window: 48,
            mutual_fraction: 0.3,
            mutual_min_pool: 4,
        }
    }
}

impl ReferenceConfig {
    /// The configured fusion rule and weight.
    pub fn fusion(&self) -> Fusion {
        Fusion { rule: self.fusion, text_weight: self.text_weight }
    }
}

/// Which backbone model to load.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// A Loupe model directory (holding `loupe-model.json`), as written by `tools/loupe_tools/export.py`.
    /// Unset: the embedded default model (`plugins/default-model/`).
    pub dir: Option<PathBuf>,
    /// Which image encoder runs: `fp32` (the model's own), or `int8` (the quantised encoder a model directory may
    /// carry, `files.image_encoder_int8`: faster on CPUs, its anomaly maps within a measured distance of fp32's,
    /// `docs/benchmarks.md`).
    pub precision: Precision,
}

/// Numeric precision of the image encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats: the exported model as it is.
    #[default]
    Fp32,
    /// The int8 (QDQ) encoder quantised by `python -m loupe_tools.quantize`.
    Int8,
}

/// Which prompt bank and vocabulary to use.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PromptConfig {
    /// A prompt bank file (`.safetensors`) made for the configured model. Unset with `model.dir` unset too: the
    /// embedded default bank.
    pub bank: Option<PathBuf>,
    /// The product's defect words. Unset: the words the bank was trained on. Words the bank never saw are encoded
    /// with its learned context (zero-shot).
    pub defects: Option<Vec<String>>,
}

/// Size of the output maps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MapSize {
    /// The input image's own size, so masks overlay the image pixel for pixel.
    #[default]
    Input,
    /// The model's input size (e.g. 518x518).
    Model,
}

/// Post-processing settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PostprocessConfig {
    /// Softmax temperature of the patch/text and image/text similarities (CLIP's 0.07).
    #[schemars(range(min = 0.001, max = 10.0))]
    pub temperature: f32,
    /// Image score above which an image is anomalous.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub image_threshold: f32,
    /// Anomaly-map value above which a pixel is anomalous. Unset: half the map's range (0.5 x feature layers).
    #[schemars(range(min = 0.0))]
    pub pixel_threshold: Option<f32>,
    /// Gaussian smoothing of the anomaly map, sigma in output pixels; 0 = none (DAPO), 4 = the CLIP peers.
    #[schemars(range(min = 0.0, max = 64.0))]
    pub smoothing_sigma: f32,
    /// Size of the output maps.
    pub map_size: MapSize,
    /// Mask regions smaller than this many pixels are dropped (from the mask too).
    #[schemars(range(min = 1))]
    pub min_region_area: u32,
    /// Which images get a mask and regions: `anomalous` (only images labelled anomalous, so the label and the
    /// regions never contradict each other) or `all` (every image: two independent thresholds, as before).
    pub segment: SegmentRule,
    /// Keep the per-class maps in each result (memory: classes x map pixels x 4 bytes).
    pub keep_class_maps: bool,
    /// Where post-processing runs: `cpu`, `gpu` or `auto` (the GPU on a hardware adapter, else the CPU).
    pub backend: PostprocessBackend,
}

/// Where the post-processor runs. Both give the same results (GPU vs CPU parity is tested within 1e-5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostprocessBackend {
    /// The CPU: the reference implementation.
    Cpu,
    /// The GPU through wgpu (Vulkan, Metal, DX12), whatever the adapter; building an engine fails when there is
    /// none. A GPU failure at run time falls back to the CPU with a warning.
    Gpu,
    /// The GPU on a hardware adapter, otherwise the CPU (a software adapter such as Mesa's lavapipe is slower
    /// than the CPU path). The choice is logged.
    #[default]
    Auto,
}

impl PostprocessConfig {
    /// The pixel threshold for maps summed over `layers` layers: the configured one, else half the map's range.
    pub fn pixel_threshold_for(&self, layers: usize) -> f32 {
        self.pixel_threshold.unwrap_or(0.5 * layers as f32)
    }
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        Self {
            temperature: 0.07,
            image_threshold: 0.5,
            pixel_threshold: None,
            smoothing_sigma: 0.0,
            map_size: MapSize::Input,
            min_region_area: 1,
            segment: SegmentRule::default(),
            keep_class_maps: false,
            backend: PostprocessBackend::Auto,
        }
    }
}

/// Engine settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Images encoded per backbone call.
    #[schemars(range(min = 1, max = 256))]
    pub batch_size: usize,
    /// Threads a backbone runs on (tract's matrix products, ONNX Runtime's intra-op pool); 0 = all cores. tract's
    /// results are bit-identical whatever the count.
    #[schemars(range(max = 1024))]
    pub threads: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self { batch_size: 4, threads: 0 }
    }
}

impl EngineConfig {
    /// The backbone's thread count: `threads`, or the cores this process may use when it is 0.
    pub fn thread_count(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

/// Which registered component fills each role (see `loupe plugins` for what is registered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ComponentsConfig {
    /// Backbone component name.
    pub backbone: String,
    /// Prompt-bank component name.
    pub prompt_bank: String,
    /// Post-processor component name.
    pub postprocessor: String,
    /// Free-form options for vendor components, by convention one object per component name.
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub options: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Default for ComponentsConfig {
    fn default() -> Self {
        Self {
            backbone: "dapo-clip-onnx".into(),
            prompt_bank: "dapo-prompt-bank".into(),
            postprocessor: "dapo-postprocess".into(),
            options: None,
        }
    }
}

/// Shared-library plugins (Rust, C or C++; `include/loupe_plugin.h`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Plugin files, or folders whose shared libraries (`.so`, `.dylib`, `.dll`) are all loaded.
    pub paths: Vec<PathBuf>,
    /// Also load what the `LOUPE_PLUGIN_PATH` environment variable lists (paths separated like `PATH`).
    pub use_env: bool,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Self { paths: Vec::new(), use_env: true }
    }
}

/// Text format of a configuration given as a string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigFormat {
    /// TOML.
    Toml,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

impl ConfigFormat {
    fn to_config(self) -> config::FileFormat {
        match self {
            Self::Toml => config::FileFormat::Toml,
            Self::Json => config::FileFormat::Json,
            Self::Yaml => config::FileFormat::Yaml,
        }
    }

    /// The format of a file, from its extension.
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("toml") => Ok(Self::Toml),
            Some("json") => Ok(Self::Json),
            Some("yaml" | "yml") => Ok(Self::Yaml),
            other => Err(LoupeError::Config {
                file: Some(path.to_path_buf()),
                field: "(file extension)".into(),
                expected: ".toml, .json, .yaml or .yml".into(),
                found: other.map_or("no extension".into(), |e| format!(".{e}")),
            }),
        }
    }
}

impl LoupeConfig {
    /// The JSON Schema of the configuration (draft 2020-12).
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(LoupeConfig)).unwrap_or_default()
    }

    /// Loads defaults, then `file` (if any), then `LOUPE_*__*` variables of the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        Self::load_with_env(file, &std::env::vars().collect())
    }

    /// As [`LoupeConfig::load`], with the environment given explicitly (for tests and embedding hosts).
    pub fn load_with_env(file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(LoupeError::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "configuration file not found"),
                ));
            }
            let text = std::fs::read_to_string(path).map_err(|e| LoupeError::io(path, e))?;
            let format = ConfigFormat::from_path(path)?;
            builder = builder.add_source(config::File::from_str(&text, format.to_config()));
        }
        builder = builder.add_source(env_source(env));
        let mut cfg = Self::build(builder, file)?;
        if let Some(base) = file.and_then(Path::parent) {
            cfg.resolve_paths(base);
        }
        Ok(cfg)
    }

    /// Parses a configuration given as a string (no environment overrides).
    pub fn from_text(text: &str, format: ConfigFormat) -> Result<Self> {
        let builder = config::Config::builder().add_source(config::File::from_str(text, format.to_config()));
        Self::build(builder, None)
    }

    fn build(builder: config::ConfigBuilder<config::builder::DefaultState>, file: Option<&Path>) -> Result<Self> {
        let syntax = |e: config::ConfigError| LoupeError::ConfigSyntax {
            file: file.map(Path::to_path_buf),
            message: e.to_string(),
        };
        let merged = builder.build().map_err(syntax)?;
        let value: serde_json::Value = merged.try_deserialize().map_err(syntax)?;
        Self::from_value(&value, file)
    }

    /// Validates a JSON value against the schema, then deserialises it. The first violation becomes a
    /// [`LoupeError::Config`] naming the field, what was expected and what was found.
    pub fn from_value(value: &serde_json::Value, file: Option<&Path>) -> Result<Self> {
        let schema = Self::json_schema();
        let validator = jsonschema::validator_for(&schema)
            .map_err(|e| LoupeError::ConfigSyntax { file: None, message: format!("internal schema error: {e}") })?;
        if let Some(err) = validator.iter_errors(value).next() {
            return Err(schema_error(&err, file));
        }
        serde_json::from_value(value.clone())
            .map_err(|e| LoupeError::ConfigSyntax { file: file.map(Path::to_path_buf), message: e.to_string() })
    }

    /// Makes relative paths relative to `base` (the configuration file's folder).
    fn resolve_paths(&mut self, base: &Path) {
        let paths = [&mut self.model.dir, &mut self.prompts.bank, &mut self.profile]
            .into_iter()
            .flatten()
            .chain(self.plugins.paths.iter_mut());
        for p in paths {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    /// The pixel threshold for maps summed over `layers` layers ([`PostprocessConfig::pixel_threshold_for`]).
    pub fn pixel_threshold(&self, layers: usize) -> f32 {
        self.postprocess.pixel_threshold_for(layers)
    }
}

/// `LOUPE_A__B=v` becomes `a.b = v`, and `LOUPE_PROFILE` the top-level `profile`; other variables without a
/// double underscore are not configuration.
fn env_source(env: &HashMap<String, String>) -> config::Environment {
    let selected: config::Map<String, String> = env
        .iter()
        .filter(|(k, _)| (k.starts_with("LOUPE_") && k.contains("__")) || k.as_str() == "LOUPE_PROFILE")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    config::Environment::with_prefix("LOUPE")
        .prefix_separator("_")
        .separator("__")
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("prompts.defects")
        .source(Some(selected))
}

fn schema_error(err: &jsonschema::ValidationError<'_>, file: Option<&Path>) -> LoupeError {
    let pointer = err.instance_path.as_str();
    let mut field = pointer.trim_start_matches('/').replace('/', ".");
    let (expected, found) = match &err.kind {
        jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
            let known = known_fields(pointer);
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(&unexpected.join(", "));
            (format!("one of the known fields ({known})"), "an unknown field".to_string())
        }
        _ => (err.to_string(), err.instance.to_string()),
    };
    LoupeError::Config {
        file: file.map(Path::to_path_buf),
        field: if field.is_empty() { "(root)".into() } else { field },
        expected,
        found,
    }
}

/// Field names the schema allows at a JSON pointer, for "did you mean" style messages.
fn known_fields(pointer: &str) -> String {
    let defaults = serde_json::to_value(LoupeConfig::default()).unwrap_or_default();
    let node = defaults.pointer(pointer).unwrap_or(&defaults);
    node.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    #[test]
    fn defaults_need_no_file() {
        let cfg = LoupeConfig::load_with_env(None, &no_env()).unwrap();
        assert_eq!(cfg, LoupeConfig::default());
        assert_eq!(cfg.pixel_threshold(4), 2.0);
    }

    #[test]
    fn file_then_environment_layers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loupe.toml");
        std::fs::write(
            &path,
            "[model]\ndir = \"models/b16\"\n[postprocess]\nsmoothing_sigma = 4\nimage_threshold = 0.3\n",
        )
        .unwrap();
        let env: HashMap<String, String> = [
            ("LOUPE_POSTPROCESS__IMAGE_THRESHOLD", "0.7"),
            ("LOUPE_PROMPTS__DEFECTS", "hole,scratch"),
            ("LOUPE_PLUGIN_PATH", "/not/a/config/field"),
            ("LOUPE_PROFILE", "/profiles/customer-a.safetensors"),
            ("LOUPE_REFERENCE__MUTUAL", "true"),
            ("LOUPE_LIMITS__MAX_IMAGE_PIXELS", "200000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let cfg = LoupeConfig::load_with_env(Some(&path), &env).unwrap();
        assert_eq!(cfg.postprocess.smoothing_sigma, 4.0);
        assert_eq!(cfg.postprocess.image_threshold, 0.7);
        assert_eq!(cfg.prompts.defects, Some(vec!["hole".to_string(), "scratch".to_string()]));
        assert_eq!(cfg.model.dir, Some(dir.path().join("models/b16")));
        assert_eq!(cfg.profile, Some(PathBuf::from("/profiles/customer-a.safetensors")));
        assert!(cfg.reference.mutual);
        assert_eq!(cfg.limits.max_image_pixels, 200_000_000, "the variable a limit refusal names works");
    }

    #[test]
    fn out_of_range_value_names_file_field_expected_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, r#"{"postprocess": {"smoothing_sigma": -1}}"#).unwrap();
        let err = LoupeConfig::load_with_env(Some(&path), &no_env()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LoupeError::Config { .. }), "{msg}");
        assert!(msg.contains("bad.json") && msg.contains("postprocess.smoothing_sigma") && msg.contains("-1"), "{msg}");
    }

    #[test]
    fn unknown_field_is_named_with_the_known_ones() {
        let err = LoupeConfig::from_text("[postprocess]\nsmoothing = 4\n", ConfigFormat::Toml).unwrap_err().to_string();
        assert!(err.contains("postprocess.smoothing") && err.contains("smoothing_sigma"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_syntax_are_reported() {
        let err = LoupeConfig::from_text("engine:\n  batch_size: many\n", ConfigFormat::Yaml).unwrap_err().to_string();
        assert!(err.contains("engine.batch_size") && err.contains("many"), "{err}");
        let err = LoupeConfig::from_text("[model\n", ConfigFormat::Toml).unwrap_err();
        assert!(matches!(err, LoupeError::ConfigSyntax { .. }), "{err}");
        let err =
            LoupeConfig::load_with_env(Some(Path::new("/nonexistent/loupe.toml")), &no_env()).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/loupe.toml"), "{err}");
    }

    #[test]
    fn schema_describes_the_fields() {
        let schema = LoupeConfig::json_schema().to_string();
        for field in ["smoothing_sigma", "image_threshold", "batch_size", "defects", "mutual_window", "fusion"] {
            assert!(schema.contains(field), "schema lacks {field}");
        }
    }
}
