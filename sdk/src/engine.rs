//! The engine: backbone -> reference scoring -> post-processor, for a batch of images. Shareable between threads:
//! every component is `Send + Sync`, the text matrix is computed once when the engine is built.
//!
//! Per image the engine gathers the evidence the active profile and configuration call for
//! (`crate::reference`): golden samples when the profile holds a memory; otherwise, with `reference.mutual`, the
//! other images of the batch; otherwise none (text only, DAPO as published). One engine serves any number of
//! profiles ([`Engine::bind_profile`]): the backbone is loaded once, each profile brings its vocabulary,
//! thresholds, fusion and memory. A stream's rolling window lives in a [`Session`](crate::session::Session).

use std::path::Path;
use std::sync::Arc;

use crate::config::{LoupeConfig, MapSize, ReferenceConfig};
use crate::detection::{Detection, Thresholds};
use crate::error::{LoupeError, Result};
use crate::features::{ImageFeatures, TextFeatures};
use crate::fusion::{Fusion, ReferenceEvidence, ScoringMode};
use crate::image_input::ImageView;
use crate::limits::Limits;
use crate::profile::Profile;
use crate::reference::{MutualSettings, golden, mutual_batch};
use crate::thresholding::{Decision, InspectOptions};
use crate::traits::{Backbone, ComponentInfo, OutputSize, PostProcessor, PostprocessRequest, PromptBank};

/// A profile checked against an engine's backbone, with the text matrix of its vocabulary. Share it (`Arc`)
/// between sessions; it is immutable.
#[derive(Debug)]
pub struct BoundProfile {
    profile: Profile,
    text: TextFeatures,
    model_id: String,
    /// The bank and vocabulary `text` came from: another engine with the same model but another bank or
    /// vocabulary must bind the profile itself.
    bank_id: String,
}

impl BoundProfile {
    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.profile.meta.name
    }

    /// The text matrix of its vocabulary (the engine's, when the profile names none).
    pub fn text(&self) -> &TextFeatures {
        &self.text
    }

    /// Whether it holds golden samples.
    pub fn has_references(&self) -> bool {
        self.profile.memory.is_some()
    }

    /// The backbone `model_id` it was bound to.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Identity of the text side it was bound with ([`Engine::bank_identity`]: bank name, content id and the
    /// engine's vocabulary).
    pub fn bank_id(&self) -> &str {
        &self.bank_id
    }
}

/// Runs detection and segmentation with one backbone, one prompt bank and one post-processor.
pub struct Engine {
    backbone: Arc<dyn Backbone>,
    bank: Arc<dyn PromptBank>,
    post: Arc<dyn PostProcessor>,
    text: TextFeatures,
    map_size: MapSize,
    batch_size: usize,
    reference: ReferenceConfig,
    profile: Option<Arc<BoundProfile>>,
    /// The post-processing configuration's decision for text-only results (`postprocess.image_threshold`,
    /// `pixel_threshold`, `min_region_area`, `segment`).
    decision: Decision,
    /// Checked on every call before any work.
    limits: Limits,
}

impl Engine {
    /// Builds an engine; `config.prompts.defects` chooses the vocabulary (unset: the bank's trained words) and
    /// `config.profile`, if set, is loaded as the default profile. Fails when the bank or the profile was made
    /// for another backbone or has another feature dimension.
    pub fn new(
        backbone: Arc<dyn Backbone>,
        bank: Arc<dyn PromptBank>,
        post: Arc<dyn PostProcessor>,
        config: &LoupeConfig,
    ) -> Result<Self> {
        let model = backbone.info();
        if bank.backbone_id() != model.id {
            return Err(LoupeError::mismatch(
                format!("prompt bank `{}`: backbone model id (the bank was made for another model)", bank.info().name),
                &model.id,
                bank.backbone_id(),
            ));
        }
        let dim = backbone.geometry().feature_dim;
        if bank.dim() != dim {
            return Err(LoupeError::mismatch(
                format!("prompt bank `{}`: feature dimension", bank.info().name),
                dim,
                bank.dim(),
            ));
        }
        config.reference.fusion().validate("reference.text_weight")?;
        let words = match &config.prompts.defects {
            Some(words) => clean_vocabulary(words)?,
            None => bank.trained_words().to_vec(),
        };
        if words.is_empty() {
            return Err(LoupeError::Vocabulary("no defect words: the bank has none and none were configured".into()));
        }
        config.limits.check_vocabulary(&words)?;
        let text = text_matrix(&*bank, &words, dim)?;
        let layers = backbone.geometry().layers;
        let mut engine = Self {
            backbone,
            bank,
            post,
            text,
            map_size: config.postprocess.map_size,
            batch_size: config.engine.batch_size.max(1),
            reference: config.reference.clone(),
            profile: None,
            decision: Decision {
                thresholds: Thresholds {
                    image: config.postprocess.image_threshold,
                    pixel: config.pixel_threshold(layers),
                },
                min_region_area: config.postprocess.min_region_area,
                segment: config.postprocess.segment,
            },
            limits: config.limits.clone(),
        };
        if let Some(path) = &config.profile {
            engine.profile = Some(engine.load_profile(path)?);
        }
        Ok(engine)
    }

    /// The same components with another defect vocabulary.
    pub fn with_vocabulary(&self, words: &[String]) -> Result<Self> {
        let text = self.bind_vocabulary(words)?;
        Ok(Self {
            text,
            backbone: self.backbone.clone(),
            bank: self.bank.clone(),
            post: self.post.clone(),
            reference: self.reference.clone(),
            profile: self.profile.clone(),
            limits: self.limits.clone(),
            ..*self
        })
    }

    /// The text matrix of `words` (cleaned: trimmed, no duplicates, not `normal`).
    pub fn bind_vocabulary(&self, words: &[String]) -> Result<TextFeatures> {
        let words = clean_vocabulary(words)?;
        self.limits.check_vocabulary(&words)?;
        if words.is_empty() {
            return Err(LoupeError::Vocabulary("an empty vocabulary".into()));
        }
        text_matrix(&*self.bank, &words, self.backbone.geometry().feature_dim)
    }

    /// Checks `profile` against this engine's backbone (model id, layers, dimension, grid) and computes the text
    /// matrix of its vocabulary once.
    pub fn bind_profile(&self, profile: Profile) -> Result<Arc<BoundProfile>> {
        let meta = &profile.meta;
        let bad = |reason: String| LoupeError::profile(&meta.name, reason);
        let model = self.backbone.info();
        if meta.model_id != model.id {
            return Err(bad(format!(
                "made for another backbone: model_id expected {} (the engine's model `{}`), found {} (`{}`)",
                model.id, model.name, meta.model_id, meta.model_name
            )));
        }
        let g = self.backbone.geometry();
        if (meta.layers, meta.dim, meta.grid) != (g.layers, g.feature_dim, g.grid) {
            return Err(bad(format!(
                "feature shape: expected {} layers x dim {} on a {:?} grid (the backbone's), found {} x {} on {:?}",
                g.layers, g.feature_dim, g.grid, meta.layers, meta.dim, meta.grid
            )));
        }
        if let Some(f) = &meta.fusion {
            f.validate("profile fusion.text_weight").map_err(|e| bad(e.to_string()))?;
        }
        let text = match &meta.vocabulary {
            Some(words) => self.bind_vocabulary(words).map_err(|e| bad(e.to_string()))?,
            None => self.text.clone(),
        };
        Ok(Arc::new(BoundProfile { profile, text, model_id: model.id, bank_id: self.bank_identity() }))
    }

    /// The text side's identity as bound profiles record it: the prompt bank and the engine's vocabulary (a
    /// profile without a vocabulary of its own uses the engine's).
    pub fn bank_identity(&self) -> String {
        let b = self.bank.info();
        format!("{} {} [{}]", b.name, b.id, self.text.words.join(", "))
    }

    /// Loads a profile file and binds it ([`Engine::bind_profile`]); errors name the file.
    pub fn load_profile(&self, path: &Path) -> Result<Arc<BoundProfile>> {
        let profile = Profile::load_with_limits(path, &self.limits)?;
        self.bind_profile(profile).map_err(|e| match e {
            LoupeError::Profile { reason, .. } => LoupeError::profile(path, reason),
            other => other,
        })
    }

    /// The default profile (`profile` of the configuration), if any.
    pub fn default_profile(&self) -> Option<&Arc<BoundProfile>> {
        self.profile.as_ref()
    }

    /// The resource limits every call is checked against (`limits` of the configuration); decode images within
    /// them too ([`crate::OwnedImage::open_with_limits`]).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The reference-scoring settings.
    pub fn reference_config(&self) -> &ReferenceConfig {
        &self.reference
    }

    /// Mutual scoring settings.
    pub fn mutual_settings(&self) -> MutualSettings {
        MutualSettings::of(&self.reference)
    }

    /// Inspects a batch of images with the default profile; one detection per image, in order.
    pub fn inspect(&self, images: &[ImageView<'_>]) -> Result<Vec<Detection>> {
        self.inspect_with(images, self.profile.as_deref())
    }

    /// Inspects a batch with `profile` (`None`: no profile, not even the default one). Golden samples when the
    /// profile holds a memory; else, with `reference.mutual`, each image against the others of the batch (at least
    /// `reference.mutual_min_pool + 1` images); else text only.
    pub fn inspect_with(&self, images: &[ImageView<'_>], profile: Option<&BoundProfile>) -> Result<Vec<Detection>> {
        self.inspect_scored(images, profile, self.reference.mutual)
    }

    /// As [`Engine::inspect_with`], with mutual scoring on or off whatever the configuration says.
    pub fn inspect_scored(
        &self,
        images: &[ImageView<'_>],
        profile: Option<&BoundProfile>,
        mutual: bool,
    ) -> Result<Vec<Detection>> {
        self.inspect_call(images, profile, mutual, &InspectOptions::default())
    }

    /// As [`Engine::inspect_scored`], with per-call options (thresholds, minimum region area, segment rule, a
    /// subset of the vocabulary, outputs kept).
    pub fn inspect_call(
        &self,
        images: &[ImageView<'_>],
        profile: Option<&BoundProfile>,
        mutual: bool,
        options: &InspectOptions,
    ) -> Result<Vec<Detection>> {
        options.validate()?;
        self.limits.check_images(images)?;
        let outputs: Vec<OutputSize> = images.iter().map(|i| self.output_size(i)).collect();
        if mutual_scores(mutual, profile) {
            // Every image of the call is every other image's reference: all features first.
            let features = self.encode(images)?;
            let evidence = mutual_batch(&features, &self.mutual_settings())?;
            let evidence: Vec<Option<ReferenceEvidence>> = evidence.into_iter().map(Some).collect();
            return self.postprocess_call(&features, &evidence, &outputs, profile, options);
        }
        let mut out = Vec::with_capacity(images.len());
        for (chunk, sizes) in images.chunks(self.batch_size).zip(outputs.chunks(self.batch_size)) {
            let features = self.encode(chunk)?;
            let evidence = self.golden_evidence(&features, profile)?;
            out.extend(self.postprocess_call(&features, &evidence, sizes, profile, options)?);
        }
        Ok(out)
    }

    /// Inspects one image with the default profile (mutual scoring needs a batch or a session).
    pub fn inspect_one(&self, image: &ImageView<'_>) -> Result<Detection> {
        let mut v = self.inspect(std::slice::from_ref(image))?;
        v.pop().ok_or_else(|| LoupeError::inference("engine", "no result"))
    }

    /// Whether images inspected with `profile` get mutual evidence (no golden samples, `reference.mutual` on).
    pub fn mutual_applies(&self, profile: Option<&BoundProfile>) -> bool {
        mutual_scores(self.reference.mutual, profile)
    }

    /// Top of the anomaly map's range in `mode` with `profile`'s fusion: the number of layers for text, the fusion
    /// rule's range otherwise.
    pub fn map_range(&self, mode: ScoringMode, profile: Option<&BoundProfile>) -> f32 {
        let layers = self.backbone.geometry().layers;
        if mode == ScoringMode::Text { layers.max(1) as f32 } else { self.fusion(profile).map_range(layers) }
    }

    /// Runs the backbone over `images` in batches of `engine.batch_size`; one checked feature set per image.
    pub fn encode(&self, images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>> {
        self.limits.check_images(images)?;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch_size) {
            let features = self.backbone.encode(chunk)?;
            if features.len() != chunk.len() {
                return Err(LoupeError::mismatch("backbone results per batch", chunk.len(), features.len()));
            }
            let g = self.backbone.geometry();
            for f in &features {
                f.validate()?;
                // A shape other than the declared one would be misread downstream, not refused.
                let declared = (g.layers, g.grid[0], g.grid[1], g.feature_dim);
                let found = (f.layers, f.grid_h, f.grid_w, f.dim);
                if found != declared {
                    return Err(LoupeError::mismatch(
                        format!("backbone `{}`: features (layers, grid h, grid w, dim)", self.backbone.info().name),
                        format!("{declared:?} as its geometry declares"),
                        format!("{found:?}"),
                    ));
                }
            }
            out.extend(features);
        }
        Ok(out)
    }

    /// Golden-sample evidence per image when `profile` holds a memory, else none.
    pub fn golden_evidence(
        &self,
        features: &[ImageFeatures],
        profile: Option<&BoundProfile>,
    ) -> Result<Vec<Option<ReferenceEvidence>>> {
        let memory = profile.and_then(|p| p.profile.memory.as_ref().zip(p.profile.meta.references.as_ref()));
        features
            .iter()
            .map(|f| memory.map(|(m, info)| golden(m, info.scale, info.images.len(), f)).transpose())
            .collect()
    }

    /// The fusion rule and weight for `profile` (its own, else the configuration's).
    pub fn fusion(&self, profile: Option<&BoundProfile>) -> Fusion {
        profile.and_then(|p| p.profile.meta.fusion).unwrap_or_else(|| self.reference.fusion())
    }

    /// The thresholds the engine imposes in `mode`: the profile's calibrated ones for that mode; else, with
    /// reference evidence, `reference.image_threshold` / `pixel_threshold` or half the fused ranges; else none
    /// (the post-processor's configured thresholds).
    pub fn thresholds(&self, mode: ScoringMode, profile: Option<&BoundProfile>) -> Option<Thresholds> {
        if let Some(t) = profile.and_then(|p| p.profile.thresholds_for(mode)) {
            return Some(t);
        }
        if mode == ScoringMode::Text {
            return None;
        }
        let fusion = self.fusion(profile);
        let layers = self.backbone.geometry().layers;
        Some(Thresholds {
            image: self.reference.image_threshold.unwrap_or(0.5 * fusion.image_range()),
            pixel: self.reference.pixel_threshold.unwrap_or(0.5 * fusion.map_range(layers)),
        })
    }

    /// The decision (thresholds, minimum region area, segment rule) results get in `mode` with `profile`:
    /// [`Engine::thresholds`], else the post-processing configuration's.
    pub fn decision(&self, mode: ScoringMode, profile: Option<&BoundProfile>) -> Decision {
        Decision { thresholds: self.thresholds(mode, profile).unwrap_or(self.decision.thresholds), ..self.decision }
    }

    /// Post-processes features with their evidence (one per image, `None` for text only) into detections with
    /// maps of `outputs` size, with `profile`'s vocabulary, fusion and thresholds.
    pub fn postprocess(
        &self,
        features: &[ImageFeatures],
        evidence: &[Option<ReferenceEvidence>],
        outputs: &[OutputSize],
        profile: Option<&BoundProfile>,
    ) -> Result<Vec<Detection>> {
        self.postprocess_call(features, evidence, outputs, profile, &InspectOptions::default())
    }

    /// As [`Engine::postprocess`], with per-call options: the vocabulary subset chooses text rows, the decision
    /// options re-threshold each result (bit-identical to thresholding there at once), skipped outputs are freed.
    pub fn postprocess_call(
        &self,
        features: &[ImageFeatures],
        evidence: &[Option<ReferenceEvidence>],
        outputs: &[OutputSize],
        profile: Option<&BoundProfile>,
        options: &InspectOptions,
    ) -> Result<Vec<Detection>> {
        if evidence.len() != features.len() || outputs.len() != features.len() {
            return Err(LoupeError::mismatch(
                "evidence and output sizes per image",
                features.len(),
                format!("{} and {}", evidence.len(), outputs.len()),
            ));
        }
        let active = profile.map_or(&self.text, |p| &p.text);
        let subset = options.classes.as_ref().map(|words| active.select(words)).transpose()?;
        let text = subset.as_ref().unwrap_or(active);
        let fusion = self.fusion(profile);
        let mut out = Vec::with_capacity(features.len());
        let items: Vec<_> = features.iter().zip(evidence).zip(outputs).collect();
        for chunk in items.chunks(self.batch_size) {
            let requests: Vec<PostprocessRequest<'_>> = chunk
                .iter()
                .map(|&((f, e), &output)| PostprocessRequest {
                    features: f,
                    output,
                    reference: e.as_ref(),
                    fusion,
                    thresholds: self.thresholds(e.as_ref().map_or(ScoringMode::Text, |e| e.mode), profile),
                })
                .collect();
            let detections = self.post.process_requests(&requests, text)?;
            if detections.len() != requests.len() {
                return Err(LoupeError::mismatch("post-processor results per batch", requests.len(), detections.len()));
            }
            for mut d in detections {
                d.evidence.profile = profile.map(|p| p.name().to_string());
                if options.changes_decision() {
                    d = d.rethreshold(&options.decision(&d.decision()))?;
                }
                options.trim(&mut d);
                out.push(d);
            }
        }
        Ok(out)
    }

    /// The size of the output maps of `image` (`postprocess.map_size`).
    pub fn output_size(&self, image: &ImageView<'_>) -> OutputSize {
        match self.map_size {
            MapSize::Input => OutputSize { width: image.width() as usize, height: image.height() as usize },
            MapSize::Model => {
                let [h, w] = self.backbone.geometry().input_size;
                OutputSize { width: w as usize, height: h as usize }
            }
        }
    }

    /// The active text matrix (row 0 normal, then the vocabulary).
    pub fn text_features(&self) -> &TextFeatures {
        &self.text
    }

    /// The active defect vocabulary.
    pub fn vocabulary(&self) -> &[String] {
        &self.text.words
    }

    /// The backbone in use.
    pub fn backbone(&self) -> &dyn Backbone {
        &*self.backbone
    }

    /// Identities of the backbone, prompt bank and post-processor.
    pub fn components(&self) -> [ComponentInfo; 3] {
        [self.backbone.info(), self.bank.info(), self.post.info()]
    }
}

/// Whether mutual scoring applies: asked for, and golden samples (which take precedence) absent.
pub(crate) fn mutual_scores(mutual: bool, profile: Option<&BoundProfile>) -> bool {
    mutual && !profile.is_some_and(BoundProfile::has_references)
}

/// The bank's text matrix of `words`, checked for shape.
fn text_matrix(bank: &dyn PromptBank, words: &[String], dim: usize) -> Result<TextFeatures> {
    let text = bank.text_features(words)?;
    if text.dim != dim || text.classes() != 1 + words.len() {
        return Err(LoupeError::mismatch(
            "text matrix from the prompt bank",
            format!("{} x {dim}", 1 + words.len()),
            format!("{} x {}", text.classes(), text.dim),
        ));
    }
    Ok(text)
}

/// Trims words, refuses empty ones and duplicates.
fn clean_vocabulary(words: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    for w in words {
        let w = w.trim();
        if w.is_empty() {
            return Err(LoupeError::Vocabulary("an empty defect word".into()));
        }
        if w.eq_ignore_ascii_case(crate::features::NORMAL_CLASS) {
            return Err(LoupeError::Vocabulary(
                "`normal` is row 0 of every vocabulary; it cannot be a defect word".into(),
            ));
        }
        if out.iter().any(|x| x == w) {
            return Err(LoupeError::Vocabulary(format!("`{w}` appears twice")));
        }
        out.push(w.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_cleaned_and_checked() {
        let ok = clean_vocabulary(&[" hole ".into(), "scratch".into()]).unwrap();
        assert_eq!(ok, vec!["hole", "scratch"]);
        assert!(clean_vocabulary(&["hole".into(), "hole".into()]).unwrap_err().to_string().contains("twice"));
        assert!(clean_vocabulary(&["".into()]).is_err());
        assert!(clean_vocabulary(&["Normal".into()]).is_err());
    }
}
