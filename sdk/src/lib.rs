//! # Loupe SDK
//!
//! Zero-shot defect detection and segmentation: a backbone encodes an image into patch features, a prompt bank
//! turns defect words into a text matrix, a post-processor compares both into per-pixel anomaly scores and defect
//! types. This crate defines those three traits ([`Backbone`], [`PromptBank`], [`PostProcessor`]), the
//! [`Engine`] that runs them, the configuration ([`LoupeConfig`]) and the error type ([`LoupeError`]).
//!
//! The DAPO reference components are in the `loupe-dapo` crate (`plugins/dapo`); where a pixel's score is
//! computed: `plugins/dapo/src/postprocess.rs`.

pub mod baseline;
pub mod config;
pub mod detection;
pub mod engine;
pub mod error;
pub mod features;
pub mod image_input;
pub mod metrics;
pub mod plugin;
pub mod regions;
pub mod render;
pub mod traits;

pub use config::{ConfigFormat, LoupeConfig, MapSize, PostprocessConfig};
pub use detection::{Detection, Region, ScoreMap, Thresholds};
pub use engine::Engine;
pub use error::{LoupeError, Result};
pub use features::{ImageFeatures, TextFeatures};
pub use image_input::{ImageView, OwnedImage, PixelFormat};
pub use traits::{Backbone, ComponentInfo, InputGeometry, OutputSize, PostProcessor, PromptBank};
