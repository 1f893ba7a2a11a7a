//! Resource limits, checked before any work starts: an input that would need more memory or time than a line
//! machine has is refused with a message naming the limit, the value found and how to raise it, instead of
//! being decoded, allocated or handed to a model runtime.
//!
//! The defaults fit a 24 GiB machine (`docs/reliability.md` gives the measured memory behind each); a host that
//! needs more raises them in the configuration's `[limits]` section or with `LOUPE_LIMITS__<NAME>`.

use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{LoupeError, Result};
use crate::image_input::ImageView;

/// The limits. Every field is a maximum; [`Limits::default`] holds the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest image in pixels (width x height), decoded from a file or passed as a view. Default 67108864
    /// (8192 x 8192).
    #[schemars(range(min = 1))]
    pub max_image_pixels: u64,
    /// Largest image file, and largest image view (stride x height), in bytes. Default 1073741824 (1 GiB).
    #[schemars(range(min = 1))]
    pub max_image_bytes: u64,
    /// Most images in one inspection call (a batch). Default 256.
    #[schemars(range(min = 1))]
    pub max_batch_images: usize,
    /// Most defect words in a vocabulary. Default 256.
    #[schemars(range(min = 1))]
    pub max_vocabulary: usize,
    /// Longest defect word, in bytes of UTF-8. Default 256.
    #[schemars(range(min = 1))]
    pub max_word_bytes: usize,
    /// Longest side of the model input a model's metadata may declare, in pixels. Default 2048 (DAPO runs at 518).
    #[schemars(range(min = 1))]
    pub max_model_input: u32,
    /// Most patch-grid cells (tokens) a model's metadata may declare. Default 16384 (DAPO at 518: 1369).
    #[schemars(range(min = 1))]
    pub max_grid_cells: u64,
    /// Largest model, prompt-bank or profile file, in bytes; it bounds every tensor such a file holds.
    /// Default 8589934592 (8 GiB; CLIP ViT-L/14 is 1.7 GB in fp32).
    #[schemars(range(min = 1))]
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_image_pixels: 8192 * 8192,
            max_image_bytes: 1 << 30,
            max_batch_images: 256,
            max_vocabulary: 256,
            max_word_bytes: 256,
            max_model_input: 2048,
            max_grid_cells: 16384,
            max_file_bytes: 8 << 30,
        }
    }
}

impl Limits {
    /// Refuses `value` above `max`: `what` names the input, `field` the limit (`max_image_pixels`).
    pub fn check(what: impl Into<String>, field: &'static str, value: u64, max: u64) -> Result<()> {
        if value > max {
            return Err(LoupeError::Limit { what: what.into(), limit: field, value, max });
        }
        Ok(())
    }

    /// Checks an image's size, from its header or its view, before it is decoded or read.
    pub fn check_image_size(&self, what: &str, width: u32, height: u32) -> Result<()> {
        let pixels = u64::from(width) * u64::from(height);
        Self::check(format!("{what} ({width} x {height} pixels)"), "max_image_pixels", pixels, self.max_image_pixels)
    }

    /// Checks a batch of views: their number, and each one's pixels and bytes.
    pub fn check_images(&self, images: &[ImageView<'_>]) -> Result<()> {
        Self::check("images in one call", "max_batch_images", images.len() as u64, self.max_batch_images as u64)?;
        for (i, image) in images.iter().enumerate() {
            self.check_view(&format!("image {i} of the call"), image)?;
        }
        Ok(())
    }

    /// Checks one view's pixels and bytes (stride x height); `what` names it.
    pub fn check_view(&self, what: &str, image: &ImageView<'_>) -> Result<()> {
        self.check_image_size(what, image.width(), image.height())?;
        let bytes = (image.stride() as u64).saturating_mul(u64::from(image.height()));
        Self::check(format!("{what} (stride x height bytes)"), "max_image_bytes", bytes, self.max_image_bytes)
    }

    /// Checks a vocabulary's size and its words' lengths.
    pub fn check_vocabulary(&self, words: &[String]) -> Result<()> {
        Self::check("defect words", "max_vocabulary", words.len() as u64, self.max_vocabulary as u64)?;
        for w in words {
            let shown: String = w.chars().take(40).collect();
            Self::check(
                format!("defect word `{shown}`... (bytes)"),
                "max_word_bytes",
                w.len() as u64,
                self.max_word_bytes as u64,
            )?;
        }
        Ok(())
    }

    /// Checks a file's size on disk before it is read; a file that cannot be examined is left to the read,
    /// which names the I/O error.
    pub fn check_file(&self, path: &Path, field: &'static str, max: u64) -> Result<()> {
        match std::fs::metadata(path) {
            Ok(meta) => Self::check(format!("file {} (bytes)", path.display()), field, meta.len(), max),
            Err(_) => Ok(()),
        }
    }

    /// Reads a model, prompt-bank or profile file after checking its size against `max_file_bytes`.
    pub fn read_file(&self, path: &Path) -> Result<Vec<u8>> {
        self.check_file(path, "max_file_bytes", self.max_file_bytes)?;
        std::fs::read(path).map_err(|e| LoupeError::io(path, e))
    }
}

/// Environment variable that sets limit `field`.
pub(crate) fn env_name(field: &str) -> String {
    format!("LOUPE_LIMITS__{}", field.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_input::PixelFormat;

    #[test]
    fn a_refusal_names_the_limit_the_value_and_how_to_raise_it() {
        let limits = Limits { max_image_pixels: 100, ..Limits::default() };
        let err = limits.check_image_size("image a.png", 20, 10).unwrap_err().to_string();
        for part in ["a.png", "20 x 10", "200", "limits.max_image_pixels", "100", "LOUPE_LIMITS__MAX_IMAGE_PIXELS"] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
        assert!(limits.check_image_size("image a.png", 10, 10).is_ok());
    }

    #[test]
    fn batches_views_and_words_are_bounded() {
        let data = vec![0u8; 64];
        let view = ImageView::new(&data, 4, 4, 16, PixelFormat::Gray8).unwrap();
        let limits = Limits { max_batch_images: 2, max_image_bytes: 63, ..Limits::default() };
        let err = limits.check_images(&[view; 3]).unwrap_err().to_string();
        assert!(err.contains("max_batch_images") && err.contains("found 3"), "{err}");
        // 16 bytes per row x 4 rows = 64 bytes: over 63 although only 16 pixels.
        let err = limits.check_images(&[view]).unwrap_err().to_string();
        assert!(err.contains("max_image_bytes") && err.contains("64"), "{err}");
        let limits = Limits { max_vocabulary: 1, max_word_bytes: 4, ..Limits::default() };
        assert!(limits.check_vocabulary(&["hole".into()]).is_ok());
        assert!(limits.check_vocabulary(&["holes".into()]).unwrap_err().to_string().contains("max_word_bytes"));
        assert!(limits.check_vocabulary(&["a".into(), "b".into()]).unwrap_err().to_string().contains("max_vocabulary"));
    }

    #[test]
    fn files_are_measured_before_they_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.safetensors");
        std::fs::write(&path, [0u8; 10]).unwrap();
        let limits = Limits { max_file_bytes: 9, ..Limits::default() };
        let err = limits.read_file(&path).unwrap_err().to_string();
        assert!(err.contains("bank.safetensors") && err.contains("max_file_bytes") && err.contains("10"), "{err}");
        assert_eq!(Limits::default().read_file(&path).unwrap().len(), 10);
    }
}
