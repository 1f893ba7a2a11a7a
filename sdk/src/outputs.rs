//! The four files `loupe inspect` writes per image: `<stem>.json`, `<stem>_heatmap.png`, `<stem>_mask.png` and
//! `<stem>_overlay.png`. One writer, so the command line, the Python package and anything scaling them out write
//! the same bytes for the same result.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::detection::Detection;
use crate::error::{LoupeError, Result};
use crate::image_input::ImageView;
use crate::render;
use crate::report::ImageReport;
use crate::traits::ComponentInfo;

/// Writes the result `d` of inspecting `image` into the folder `out` (which must exist) as `loupe inspect` does;
/// `name` is the image's name recorded in the JSON (`image`), `stem` the prefix of the four files. Returns the JSON
/// file's path.
pub fn write_image_outputs(
    out: &Path,
    stem: &str,
    name: &str,
    image: &ImageView<'_>,
    d: &Detection,
    components: &[ComponentInfo; 3],
) -> Result<PathBuf> {
    let range = d.map_range;
    let (w, h) = (d.anomaly_map.width as u32, d.anomaly_map.height as u32);
    let mut rgb = image.to_rgb();
    if rgb.dimensions() != (w, h) {
        rgb = image::imageops::resize(&rgb, w, h, image::imageops::FilterType::Triangle);
    }
    let files: [(&'static str, String); 3] = [
        ("heatmap", format!("{stem}_heatmap.png")),
        ("mask", format!("{stem}_mask.png")),
        ("overlay", format!("{stem}_overlay.png")),
    ];
    let save = |name: &str, result: image::ImageResult<()>| {
        result.map_err(|e| LoupeError::Image { path: out.join(name), reason: format!("cannot write: {e}") })
    };
    save(&files[0].1, render::heatmap(&d.anomaly_map, range).save(out.join(&files[0].1)))?;
    save(&files[1].1, render::mask_image(d).save(out.join(&files[1].1)))?;
    save(&files[2].1, render::overlay(&rgb, d, range).save(out.join(&files[2].1)))?;
    let outputs: BTreeMap<&'static str, String> = files.into_iter().collect();
    let report = ImageReport::new(name.to_string(), d, range, components, outputs);
    let json_path = out.join(format!("{stem}.json"));
    let text = serde_json::to_string_pretty(&report).map_err(|e| LoupeError::inference("result JSON", e))?;
    std::fs::write(&json_path, text).map_err(|e| LoupeError::io(&json_path, e))?;
    Ok(json_path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detection::{Evidence, ScoreMap, Thresholds};
    use crate::image_input::PixelFormat;
    use crate::thresholding::SegmentRule;

    fn detection(w: usize, h: usize) -> Detection {
        let n = w * h;
        Detection {
            score: 0.7,
            normalized_score: 0.6,
            is_anomalous: true,
            classes: vec!["normal".into(), "hole".into()],
            class_probabilities: vec![0.3, 0.7],
            image_type: "hole".into(),
            anomaly_map: ScoreMap { width: w, height: h, data: (0..n).map(|i| i as f32 / n as f32).collect() },
            map_range: 1.0,
            score_range: 1.0,
            class_maps: Vec::new(),
            type_map: vec![0; n],
            pixel_types: Vec::new(),
            mask: (0..n).map(|i| if i % 3 == 0 { 255 } else { 0 }).collect(),
            regions: Vec::new(),
            thresholds: Thresholds { image: 0.5, pixel: 0.5 },
            min_region_area: 1,
            segment: SegmentRule::Anomalous,
            evidence: Evidence::text(0.7),
        }
    }

    fn components() -> [ComponentInfo; 3] {
        std::array::from_fn(|i| ComponentInfo { kind: format!("kind{i}"), name: "n".into(), id: String::new() })
    }

    #[test]
    fn writes_four_files_at_the_map_size_and_names_them_in_the_json() {
        let dir = tempfile::tempdir().unwrap();
        let pixels = vec![7u8; 10 * 6];
        let image = ImageView::packed(&pixels, 10, 6, PixelFormat::Gray8).unwrap();
        let d = detection(5, 3);
        let json = write_image_outputs(dir.path(), "part", "in/part.png", &image, &d, &components()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["image"], "in/part.png");
        for (key, file) in [("heatmap", "part_heatmap.png"), ("mask", "part_mask.png"), ("overlay", "part_overlay.png")]
        {
            assert_eq!(v["outputs"][key], file);
            let img = image::open(dir.path().join(file)).unwrap();
            assert_eq!((img.width(), img.height()), (5, 3), "{file} is at the map size");
        }
        let mask = image::open(dir.path().join("part_mask.png")).unwrap().to_luma8();
        assert_eq!(mask.as_raw(), &d.mask);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-folder");
        let pixels = vec![0u8; 4];
        let image = ImageView::packed(&pixels, 2, 2, PixelFormat::Gray8).unwrap();
        let err = write_image_outputs(&missing, "x", "x.png", &image, &detection(2, 2), &components())
            .unwrap_err()
            .to_string();
        assert!(err.contains("x_heatmap.png"), "{err}");
    }
}
