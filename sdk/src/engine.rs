//! The engine: backbone -> prompt bank -> post-processor, for a batch of images. Shareable between threads:
//! every component is `Send + Sync`, the text matrix is computed once when the engine is built.

use std::sync::Arc;

use crate::config::{LoupeConfig, MapSize};
use crate::detection::Detection;
use crate::error::{LoupeError, Result};
use crate::features::TextFeatures;
use crate::image_input::ImageView;
use crate::traits::{Backbone, ComponentInfo, OutputSize, PostProcessor, PromptBank};

/// Runs detection and segmentation with one backbone, one prompt bank and one post-processor.
pub struct Engine {
    backbone: Arc<dyn Backbone>,
    bank: Arc<dyn PromptBank>,
    post: Arc<dyn PostProcessor>,
    text: TextFeatures,
    map_size: MapSize,
    batch_size: usize,
}

impl Engine {
    /// Builds an engine; `config.prompts.defects` chooses the vocabulary (unset: the bank's trained words).
    /// Fails when the bank was made for another backbone or has another feature dimension.
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
        let words = match &config.prompts.defects {
            Some(words) => clean_vocabulary(words)?,
            None => bank.trained_words().to_vec(),
        };
        if words.is_empty() {
            return Err(LoupeError::Vocabulary("no defect words: the bank has none and none were configured".into()));
        }
        let text = bank.text_features(&words)?;
        if text.dim != dim || text.classes() != 1 + words.len() {
            return Err(LoupeError::mismatch(
                "text matrix from the prompt bank",
                format!("{} x {dim}", 1 + words.len()),
                format!("{} x {}", text.classes(), text.dim),
            ));
        }
        Ok(Self {
            backbone,
            bank,
            post,
            text,
            map_size: config.postprocess.map_size,
            batch_size: config.engine.batch_size.max(1),
        })
    }

    /// The same components with another defect vocabulary.
    pub fn with_vocabulary(&self, words: &[String]) -> Result<Self> {
        let words = clean_vocabulary(words)?;
        let text = self.bank.text_features(&words)?;
        Ok(Self { text, backbone: self.backbone.clone(), bank: self.bank.clone(), post: self.post.clone(), ..*self })
    }

    /// Inspects a batch of images; one detection per image, in order.
    pub fn inspect(&self, images: &[ImageView<'_>]) -> Result<Vec<Detection>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch_size) {
            let features = self.backbone.encode(chunk)?;
            if features.len() != chunk.len() {
                return Err(LoupeError::mismatch("backbone results per batch", chunk.len(), features.len()));
            }
            let mut batch = Vec::with_capacity(chunk.len());
            for (image, f) in chunk.iter().zip(&features) {
                f.validate()?;
                batch.push((f, self.output_size(image)));
            }
            let detections = self.post.process_batch(&batch, &self.text)?;
            if detections.len() != batch.len() {
                return Err(LoupeError::mismatch("post-processor results per batch", batch.len(), detections.len()));
            }
            out.extend(detections);
        }
        Ok(out)
    }

    /// Inspects one image.
    pub fn inspect_one(&self, image: &ImageView<'_>) -> Result<Detection> {
        let mut v = self.inspect(std::slice::from_ref(image))?;
        v.pop().ok_or_else(|| LoupeError::inference("engine", "no result"))
    }

    fn output_size(&self, image: &ImageView<'_>) -> OutputSize {
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
