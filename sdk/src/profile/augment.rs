//! Views added to few references (as the few-shot CLIP detectors do, e.g. WinCLIP+ and PromptAD): flips and
//! rotations of each good image, so a memory of k images covers more of the poses normal patches appear in.
//! Only for products whose normal appearance does not change under the transform (a mirrored part that would be
//! a defect must not use them).

use image::RgbImage;
use image::imageops;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::image_input::{ImageView, OwnedImage, PixelFormat};

/// Which views of each reference enter the memory besides the image itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Augmentation {
    /// The image only.
    #[default]
    None,
    /// Plus the horizontal and vertical mirror images and the half turn (4 views).
    Flips,
    /// Plus every rotation by quarter turns and their mirror images (the 8 symmetries of the square).
    Rotations,
}

impl Augmentation {
    /// Views per reference, the image included.
    pub fn views(self) -> usize {
        match self {
            Self::None => 1,
            Self::Flips => 4,
            Self::Rotations => 8,
        }
    }

    /// The added views of `image` (not the image itself), as packed RGB.
    pub fn extra_views(self, image: &ImageView<'_>) -> Vec<OwnedImage> {
        if self == Self::None {
            return Vec::new();
        }
        let rgb = image.to_rgb();
        let mut out = vec![imageops::flip_horizontal(&rgb), imageops::flip_vertical(&rgb), imageops::rotate180(&rgb)];
        if self == Self::Rotations {
            let quarter = imageops::rotate90(&rgb);
            let three = imageops::rotate270(&rgb);
            out.push(imageops::flip_horizontal(&quarter));
            out.push(imageops::flip_horizontal(&three));
            out.push(quarter);
            out.push(three);
        }
        out.into_iter().map(owned).collect()
    }
}

fn owned(rgb: RgbImage) -> OwnedImage {
    let (width, height) = rgb.dimensions();
    OwnedImage { data: rgb.into_raw(), width, height, format: PixelFormat::Rgb8 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_are_the_symmetries_of_the_image() {
        // 2x1 gray: pixels 10, 20.
        let view = ImageView::packed(&[10u8, 20], 2, 1, PixelFormat::Gray8).unwrap();
        assert!(Augmentation::None.extra_views(&view).is_empty());
        let flips = Augmentation::Flips.extra_views(&view);
        assert_eq!(flips.len(), Augmentation::Flips.views() - 1);
        assert_eq!(flips[0].data, vec![20, 20, 20, 10, 10, 10], "mirrored left-right");
        assert_eq!((flips[1].width, flips[1].height), (2, 1));
        let all = Augmentation::Rotations.extra_views(&view);
        assert_eq!(all.len(), 7);
        assert!(all[3..].iter().all(|v| (v.width, v.height) == (1, 2)), "quarter turns swap the sides");
    }
}
