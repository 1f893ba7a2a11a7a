//! The three component traits of the pipeline. A backbone turns images into features, a prompt bank turns a
//! defect vocabulary into a text matrix, a post-processor turns both into a [`Detection`]. The DAPO reference
//! implementations live in `plugins/dapo`.

use crate::detection::{Detection, Thresholds};
use crate::error::Result;
use crate::features::{ImageFeatures, TextFeatures};
use crate::fusion::{Fusion, ReferenceEvidence};
use crate::image_input::ImageView;

/// Identity of a component, recorded in every result so a number can be traced to the model that produced it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ComponentInfo {
    /// Implementation name (`dapo-clip-onnx`, `dapo-prompt-bank`, ...).
    pub kind: String,
    /// Name of the loaded instance (model or bank name).
    pub name: String,
    /// Content identity (model id, bank hash); empty when the component has none.
    pub id: String,
}

/// What a backbone expects and produces.
#[derive(Clone, Debug, PartialEq)]
pub struct InputGeometry {
    /// Input `[height, width]` in pixels.
    pub input_size: [u32; 2],
    /// Per-channel mean (RGB, on 0..1 values).
    pub mean: [f32; 3],
    /// Per-channel standard deviation.
    pub std: [f32; 3],
    /// Patch grid `[height, width]`.
    pub grid: [usize; 2],
    /// Feature dimension of global and patch features.
    pub feature_dim: usize,
    /// Number of patch-feature layers.
    pub layers: usize,
}

/// Image -> global feature + patch features of several layers.
pub trait Backbone: Send + Sync {
    /// Identity of the loaded model.
    fn info(&self) -> ComponentInfo;
    /// Input geometry and feature shape.
    fn geometry(&self) -> &InputGeometry;
    /// Encodes a batch of images of any size (each is resized to the input size); one result per image.
    fn encode(&self, images: &[ImageView<'_>]) -> Result<Vec<ImageFeatures>>;
}

/// Defect vocabulary -> text matrix (row 0 normal, one row per defect word).
pub trait PromptBank: Send + Sync {
    /// Identity of the bank.
    fn info(&self) -> ComponentInfo;
    /// The `model_id` of the backbone this bank was made for.
    fn backbone_id(&self) -> &str;
    /// Dimension of its text features.
    fn dim(&self) -> usize;
    /// The words it was trained on (its default vocabulary).
    fn trained_words(&self) -> &[String];
    /// Whether it can encode words it was not trained on (it carries learned context and a text encoder).
    fn can_add_words(&self) -> bool;
    /// The L2-normalised text matrix of `normal` + `words`, in that order.
    fn text_features(&self, words: &[String]) -> Result<TextFeatures>;
}

/// Where the output maps are laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputSize {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
}

/// What the engine asks of a post-processor for one image.
#[derive(Clone, Copy, Debug)]
pub struct PostprocessRequest<'a> {
    /// The image's features.
    pub features: &'a ImageFeatures,
    /// Size of the output maps.
    pub output: OutputSize,
    /// Reference evidence to fuse with the text evidence (`loupe_sdk::fusion`), if any.
    pub reference: Option<&'a ReferenceEvidence>,
    /// How to fuse it (used only with `reference`).
    pub fusion: Fusion,
    /// Thresholds to apply instead of the post-processor's configured ones (a profile's calibrated thresholds,
    /// or those of fused scores); `None`: the configured ones.
    pub thresholds: Option<Thresholds>,
}

impl<'a> PostprocessRequest<'a> {
    /// Text evidence only, with the post-processor's configured thresholds.
    pub fn text(features: &'a ImageFeatures, output: OutputSize) -> Self {
        Self { features, output, reference: None, fusion: Fusion::default(), thresholds: None }
    }
}

/// Features + text matrix (+ reference evidence) -> maps, scores, types, mask and regions.
pub trait PostProcessor: Send + Sync {
    /// Identity of the post-processor.
    fn info(&self) -> ComponentInfo;

    /// Post-processes one image: the text evidence of `request.features` against the text matrix, fused with
    /// `request.reference` when given, into maps of `request.output` size.
    fn process_request(&self, request: &PostprocessRequest<'_>, text: &TextFeatures) -> Result<Detection>;

    /// Post-processes a batch (one text matrix), one detection per request, in order. The default calls
    /// [`PostProcessor::process_request`] per image; a GPU post-processor overrides it to submit the whole batch
    /// at once.
    fn process_requests(&self, batch: &[PostprocessRequest<'_>], text: &TextFeatures) -> Result<Vec<Detection>> {
        batch.iter().map(|r| self.process_request(r, text)).collect()
    }

    /// Text evidence only, with the configured thresholds: [`PostProcessor::process_request`] of
    /// [`PostprocessRequest::text`].
    fn process(&self, features: &ImageFeatures, text: &TextFeatures, output: OutputSize) -> Result<Detection> {
        self.process_request(&PostprocessRequest::text(features, output), text)
    }

    /// A batch with text evidence only: [`PostProcessor::process_requests`] of text requests.
    fn process_batch(&self, batch: &[(&ImageFeatures, OutputSize)], text: &TextFeatures) -> Result<Vec<Detection>> {
        let requests: Vec<PostprocessRequest<'_>> =
            batch.iter().map(|&(features, output)| PostprocessRequest::text(features, output)).collect();
        self.process_requests(&requests, text)
    }
}
