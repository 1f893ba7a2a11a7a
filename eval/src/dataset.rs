//! MVTec-layout data sets: which images to evaluate, their folder type and where their ground-truth mask is.
//!
//! Two layouts are accepted, both from the folder given (or its `--category` subfolder):
//! - MVTec AD: `test/good/`, `test/<type>/`, `ground_truth/<type>/<stem>_mask.png` (a `train/` folder is ignored);
//! - flat (Magnetic-Tile as prepared here): `good/`, `<type>/`, `ground_truth/<type>/<stem>_mask.png`.
//!
//! A defect folder without `ground_truth/<type>/` has image labels only: its images count for the image metrics,
//! and the pixel metrics that would need its masks are undefined.
//!
//! Images are the PNG, JPEG, BMP and TIFF files directly inside each type folder, sorted by name. `--include` and
//! `--exclude` take comma-separated globs matched against file stems (`exp5*,exp6*`).

use std::path::{Path, PathBuf};

use glob::Pattern;
use loupe_sdk::LoupeError;

/// File extensions taken as images.
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

/// The folder of defect-free images.
pub const GOOD: &str = "good";

/// Folders that are never a defect type.
const NOT_TYPES: [&str; 3] = ["ground_truth", "train", "validation"];

/// One image to evaluate.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The image file.
    pub path: PathBuf,
    /// File stem (the name the filters and masks use).
    pub stem: String,
    /// Folder type: `good` or a defect type.
    pub folder: String,
    /// Where its mask must be (defect types with a `ground_truth/<type>/` folder only).
    pub mask: Option<PathBuf>,
    /// Whether its pixels have ground truth: good images (every pixel normal) and defect types with masks;
    /// false for defect folders without `ground_truth/<type>/` (image labels only).
    pub pixel_truth: bool,
}

impl Sample {
    /// Whether the image is defect-free by its folder.
    pub fn is_good(&self) -> bool {
        self.folder == GOOD
    }
}

/// The images of a data set after filtering.
#[derive(Debug)]
pub struct Dataset {
    /// The folder holding the type folders (`<root>[/category][/test]`).
    pub images_dir: PathBuf,
    /// The ground-truth folder.
    pub ground_truth_dir: PathBuf,
    /// `mvtec` (with `test/`) or `flat`.
    pub layout: &'static str,
    /// Defect type folders (not `good`), sorted.
    pub defect_types: Vec<String>,
    /// Images to evaluate, by folder then name.
    pub samples: Vec<Sample>,
    /// Images left out by `--include` / `--exclude`.
    pub filtered_out: usize,
    /// Defect folders without `ground_truth/<type>/`: evaluated at image level only.
    pub folders_without_masks: Vec<String>,
}

/// Stem filters: a stem is kept if it matches an include glob (or none are given) and no exclude glob.
#[derive(Debug, Default)]
pub struct StemFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl StemFilter {
    /// Parses the globs; a malformed one is a configuration error naming the option.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, LoupeError> {
        let parse = |field: &str, globs: &[String]| -> Result<Vec<Pattern>, LoupeError> {
            globs
                .iter()
                .map(|g| g.trim())
                .filter(|g| !g.is_empty())
                .map(|g| {
                    Pattern::new(g).map_err(|e| LoupeError::Config {
                        file: None,
                        field: field.into(),
                        expected: "comma-separated globs on file stems (e.g. exp5*,exp6*)".into(),
                        found: format!("`{g}` ({e})"),
                    })
                })
                .collect()
        };
        Ok(Self { include: parse("--include", include)?, exclude: parse("--exclude", exclude)? })
    }

    /// Whether a file stem passes.
    pub fn keeps(&self, stem: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p.matches(stem)))
            && !self.exclude.iter().any(|p| p.matches(stem))
    }
}

fn not_found(path: &Path, what: &str) -> LoupeError {
    LoupeError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, what.to_string()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, LoupeError> {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(|e| LoupeError::io(dir, e))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    Ok(entries)
}

/// Whether `path` is a file with an image extension (PNG, JPEG, BMP, TIFF).
pub fn is_image(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

impl Dataset {
    /// Finds the images of `root` (or `root/category`) that pass `filter`.
    pub fn open(root: &Path, category: Option<&str>, filter: &StemFilter) -> Result<Self, LoupeError> {
        let base = match category {
            Some(c) => root.join(c),
            None => root.to_path_buf(),
        };
        if !base.is_dir() {
            let what = match category {
                Some(c) => format!("no category folder `{c}` in the data set"),
                None => "no such data set folder".to_string(),
            };
            return Err(not_found(&base, &what));
        }
        let (images_dir, layout) =
            if base.join("test").is_dir() { (base.join("test"), "mvtec") } else { (base.clone(), "flat") };
        let ground_truth_dir = base.join("ground_truth");
        let mut folders = Vec::new();
        for p in sorted_entries(&images_dir)? {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if p.is_dir() && !name.starts_with('.') && !NOT_TYPES.contains(&name.as_str()) {
                folders.push((name, p));
            }
        }
        if folders.is_empty() {
            return Err(LoupeError::Config {
                file: None,
                field: "DATASET".into(),
                expected: "an MVTec-layout folder: good/ and <type>/ folders (or test/good, test/<type>), \
                           ground_truth/<type>/<stem>_mask.png"
                    .into(),
                found: format!("no type folder in {}", images_dir.display()),
            });
        }
        let mut samples = Vec::new();
        let mut filtered_out = 0;
        let mut folders_without_masks = Vec::new();
        for (folder, dir) in &folders {
            let masks = ground_truth_dir.join(folder);
            let has_masks = folder == GOOD || masks.is_dir();
            if !has_masks {
                folders_without_masks.push(folder.clone());
            }
            for path in sorted_entries(dir)?.into_iter().filter(|p| is_image(p)) {
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                if !filter.keeps(&stem) {
                    filtered_out += 1;
                    continue;
                }
                let mask = (folder != GOOD && has_masks).then(|| masks.join(format!("{stem}_mask.png")));
                samples.push(Sample { path, stem, folder: folder.clone(), mask, pixel_truth: has_masks });
            }
        }
        let defect_types = folders.into_iter().map(|(n, _)| n).filter(|n| n != GOOD).collect();
        Ok(Self { images_dir, ground_truth_dir, layout, defect_types, samples, filtered_out, folders_without_masks })
    }

    /// Number of images per folder type, `good` first.
    pub fn counts(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        let names = std::iter::once(GOOD.to_string()).chain(self.defect_types.iter().cloned());
        for name in names {
            out.push((name.clone(), self.samples.iter().filter(|s| s.folder == name).count()));
        }
        out
    }
}

/// The word a folder name stands for: lower case, `_` and `-` as spaces, spaces collapsed (`broken_large` ->
/// `broken large`). Folder types and vocabulary words are matched on this form.
pub fn normalise_word(name: &str) -> String {
    name.to_lowercase().replace(['_', '-'], " ").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a ground-truth mask as `true` = defect (any non-zero value), checking it has the image's size.
pub fn read_mask(path: &Path, width: u32, height: u32) -> Result<Vec<bool>, LoupeError> {
    if !path.is_file() {
        return Err(not_found(path, "ground-truth mask not found (expected ground_truth/<type>/<stem>_mask.png)"));
    }
    let img = image::open(path)
        .map_err(|e| LoupeError::Image { path: path.to_path_buf(), reason: format!("cannot decode mask: {e}") })?;
    if (img.width(), img.height()) != (width, height) {
        return Err(LoupeError::Image {
            path: path.to_path_buf(),
            reason: format!(
                "mask size: expected {width}x{height} (the image's), found {}x{}",
                img.width(),
                img.height()
            ),
        });
    }
    Ok(img.to_luma8().into_raw().into_iter().map(|v| v != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stem_filters() {
        let f = StemFilter::new(&["exp5*".into(), " exp6* ".into()], &["*_b".into()]).unwrap();
        assert!(f.keeps("exp5_num_1"));
        assert!(f.keeps("exp6_x"));
        assert!(!f.keeps("exp4_x"));
        assert!(!f.keeps("exp5_b"));
        assert!(StemFilter::default().keeps("anything"));
        let err = StemFilter::new(&["[".into()], &[]).unwrap_err().to_string();
        assert!(err.contains("--include") && err.contains('['), "{err}");
    }

    #[test]
    fn words_match_folder_names() {
        assert_eq!(normalise_word("Broken_large"), "broken large");
        assert_eq!(normalise_word(" faulty-imprint "), "faulty imprint");
    }
}
