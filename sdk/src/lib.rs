//! # Loupe SDK
//!
//! Zero-shot defect detection and segmentation: a backbone encodes an image into patch features, a prompt bank
//! turns defect words into a text matrix, a post-processor compares both into per-pixel anomaly scores and defect
//! types. This crate defines those three traits ([`Backbone`], [`PromptBank`], [`PostProcessor`]), the
//! [`Engine`] that runs them, the configuration ([`LoupeConfig`]) and the error type ([`LoupeError`]).
//!
//! Between backbone and post-processor the engine adds reference evidence when asked (`reference`, computed by
//! the `loupe-reference` crate): golden samples of a product [`Profile`], or mutual scoring among a batch or a
//! [`Session`]'s stream window; `fusion` says how it combines with the text evidence.
//!
//! The DAPO reference components are in the `loupe-dapo` crate (`plugins/dapo`); where a pixel's score is
//! computed: `plugins/dapo/src/postprocess/mod.rs`.

pub mod config;
pub mod detection;
pub mod engine;
pub mod error;
pub mod features;
pub mod fusion;
pub mod image_input;
pub mod limits;
pub mod outputs;
pub mod plugin;
pub mod profile;
pub mod reference;
pub mod regions;
pub mod render;
pub mod report;
pub mod session;
pub mod thresholding;
pub mod traits;

pub use config::{ConfigFormat, LoupeConfig, MapSize, PostprocessConfig};
pub use detection::{Detection, Evidence, Region, ScoreMap, Thresholds};
pub use engine::{BoundProfile, Engine};
pub use error::{LoupeError, Result};
pub use features::{ImageFeatures, TextFeatures};
pub use fusion::{Fusion, FusionRule, ReferenceEvidence, ScoringMode};
pub use image_input::{ImageView, OwnedImage, PixelFormat};
pub use limits::Limits;
pub use profile::Profile;
pub use session::Session;
pub use thresholding::{Decision, InspectOptions, SegmentRule};
pub use traits::{Backbone, ComponentInfo, InputGeometry, OutputSize, PostProcessor, PostprocessRequest, PromptBank};
