//! Reference images named on the command line (`--references`, `--good`): folders (their image files, not
//! subfolders), files, or glob patterns that loupe expands itself (quote them so the shell does not), sorted by
//! path, without duplicates; `--shots K` keeps K of them spread evenly over that list, deterministically.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use loupe_eval::dataset::is_image;
use loupe_sdk::profile::ReferenceImage;
use loupe_sdk::{LoupeError, OwnedImage};

fn not_found(path: &Path, what: &str) -> LoupeError {
    LoupeError::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, what.to_string()))
}

/// The image files of a folder (directly inside it), sorted.
fn folder_images(dir: &Path) -> Result<Vec<PathBuf>, LoupeError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| LoupeError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_image(p))
        .collect();
    v.sort();
    Ok(v)
}

/// Expands `inputs` (`option` names the flag in errors) into sorted, distinct image files. A pattern or folder
/// that yields no image is an error naming it.
pub fn expand(inputs: &[String], option: &str) -> Result<Vec<PathBuf>, LoupeError> {
    let mut out = BTreeSet::new();
    for input in inputs {
        let path = Path::new(input);
        let found: Vec<PathBuf> = if path.is_dir() {
            folder_images(path)?
        } else if path.is_file() {
            if !is_image(path) {
                return Err(LoupeError::Image {
                    path: path.to_path_buf(),
                    reason: format!("{option}: not an image file (expected .png, .jpg, .jpeg, .bmp, .tif, .tiff)"),
                });
            }
            vec![path.to_path_buf()]
        } else if input.contains(['*', '?', '[']) {
            let matches = glob::glob(input).map_err(|e| LoupeError::Config {
                file: None,
                field: option.into(),
                expected: "folders, image files or glob patterns".into(),
                found: format!("`{input}` ({e})"),
            })?;
            let mut v = Vec::new();
            for m in matches.flatten() {
                if m.is_dir() {
                    v.extend(folder_images(&m)?);
                } else if is_image(&m) {
                    v.push(m);
                }
            }
            v
        } else {
            return Err(not_found(path, &format!("{option}: no such file, folder or pattern")));
        };
        if found.is_empty() {
            return Err(not_found(path, &format!("{option}: no image files here")));
        }
        out.extend(found);
    }
    Ok(out.into_iter().collect())
}

/// `shots` paths spread evenly over `paths` (indices `i x n / shots`), or all of them without `shots`.
pub fn spread(paths: Vec<PathBuf>, shots: Option<usize>, option: &str) -> Result<Vec<PathBuf>, LoupeError> {
    let Some(k) = shots else { return Ok(paths) };
    let n = paths.len();
    if k == 0 || k > n {
        return Err(LoupeError::Config {
            file: None,
            field: "--shots".into(),
            expected: format!("1 to {n} (the images {option} names)"),
            found: k.to_string(),
        });
    }
    Ok((0..k).map(|i| paths[i * n / k].clone()).collect())
}

/// `expand` then `spread`: the reference files `--references` and `--shots` name.
pub fn select(inputs: &[String], shots: Option<usize>) -> Result<Vec<PathBuf>, LoupeError> {
    spread(expand(inputs, "--references")?, shots, "--references")
}

/// Refuses reference images that are also evaluated (or calibrated) images, comparing canonical paths.
pub fn refuse_overlap<'a>(
    references: &[PathBuf],
    evaluated: impl IntoIterator<Item = &'a Path>,
    option: &str,
) -> Result<(), LoupeError> {
    let canon = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    let refs: BTreeSet<PathBuf> = references.iter().map(|p| canon(p)).collect();
    let both: Vec<PathBuf> = evaluated.into_iter().map(canon).filter(|p| refs.contains(p)).collect();
    if let Some(first) = both.first() {
        return Err(LoupeError::Config {
            file: None,
            field: option.into(),
            expected: "reference images that are not among the evaluated images (a reference scores itself as \
                       perfectly normal)"
                .into(),
            found: format!("{} shared image(s), e.g. {}", both.len(), first.display()),
        });
    }
    Ok(())
}

/// Decodes every reference; the first that fails is an error naming it (a golden set should be intentional: no
/// reference is skipped silently).
pub fn decode(paths: &[PathBuf]) -> Result<Vec<(String, OwnedImage)>, LoupeError> {
    paths.iter().map(|p| Ok((p.display().to_string(), OwnedImage::open(p)?))).collect()
}

/// The decoded references as the SDK takes them (names and views borrowed from `images`).
pub fn views(images: &[(String, OwnedImage)]) -> Vec<ReferenceImage<'_>> {
    images.iter().map(|(name, img)| ReferenceImage { name, image: img.view() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shots_spread_evenly_and_are_checked() {
        let paths: Vec<PathBuf> = (0..10).map(|i| PathBuf::from(format!("{i}.png"))).collect();
        let picked = spread(paths.clone(), Some(4), "--references").unwrap();
        assert_eq!(picked, ["0.png", "2.png", "5.png", "7.png"].map(PathBuf::from));
        assert_eq!(spread(paths.clone(), None, "--references").unwrap().len(), 10);
        let err = spread(paths, Some(11), "--references").unwrap_err().to_string();
        assert!(err.contains("--shots") && err.contains("1 to 10") && err.contains("11"), "{err}");
    }

    #[test]
    fn folders_files_and_patterns_expand_sorted_and_distinct() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.png", "a.png", "c.txt"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let d = dir.path().display().to_string();
        let got = expand(&[d.clone(), format!("{d}/a*"), format!("{d}/b.png")], "--references").unwrap();
        assert_eq!(got, vec![dir.path().join("a.png"), dir.path().join("b.png")]);
        let err = expand(&[format!("{d}/z*")], "--references").unwrap_err().to_string();
        assert!(err.contains("no image files"), "{err}");
        let err = expand(&[format!("{d}/c.txt")], "--references").unwrap_err().to_string();
        assert!(err.contains("not an image"), "{err}");
        let err = expand(&[format!("{d}/nothing")], "--references").unwrap_err().to_string();
        assert!(err.contains("no such file"), "{err}");
        let overlap = refuse_overlap(&got, [dir.path().join("b.png").as_path()], "--references");
        assert!(overlap.unwrap_err().to_string().contains("1 shared image"));
    }
}
