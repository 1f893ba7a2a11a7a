//! The worst cases of an evaluation as one picture: the good images that scored highest (false positives) and the
//! defective images that scored lowest (false negatives), each as the image with its ground-truth outline (green)
//! beside the anomaly map overlay (predicted mask in red). Only the current worst few are kept, as thumbnails.

use std::path::Path;

use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use loupe_sdk::{Detection, render};
use plotters::prelude::*;

use crate::plots::{FAMILY, draw_on};

/// Thumbnail height of each panel, pixels.
const PANEL: u32 = 128;
/// Caption height under a tile.
const CAPTION: u32 = 34;
/// Gap between tiles.
const GAP: u32 = 12;
/// Rows wrap before this width, pixels.
const MAX_WIDTH: u32 = 1400;

struct Tile {
    score: f32,
    caption: String,
    detail: String,
    picture: RgbImage,
}

/// The worst false positives and false negatives seen so far.
pub struct Gallery {
    capacity: usize,
    false_positives: Vec<Tile>,
    false_negatives: Vec<Tile>,
}

impl Gallery {
    /// Keeps at most `capacity` of each kind.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, false_positives: Vec::new(), false_negatives: Vec::new() }
    }

    /// Whether an image with this score would enter the gallery (so that the caller renders only those).
    pub fn wants(&self, good: bool, score: f32) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let kept = if good { &self.false_positives } else { &self.false_negatives };
        kept.len() < self.capacity || kept.last().is_some_and(|t| if good { score > t.score } else { score < t.score })
    }

    /// Offers an image: `input` at the map's size, `mask` its ground truth, `range` the map's full scale.
    pub fn offer(&mut self, good: bool, name: &str, input: &RgbImage, d: &Detection, mask: &[bool], range: f32) {
        if !self.wants(good, d.score) {
            return;
        }
        let tile = Tile {
            score: d.score,
            caption: truncate(name, 30),
            detail: format!("score {:.3}, type {}", d.score, d.image_type),
            picture: panels(input, d, mask, range),
        };
        let kept = if good { &mut self.false_positives } else { &mut self.false_negatives };
        kept.push(tile);
        // Worst first: highest score among good images, lowest among defective ones.
        if good {
            kept.sort_by(|a, b| b.score.total_cmp(&a.score));
        } else {
            kept.sort_by(|a, b| a.score.total_cmp(&b.score));
        }
        kept.truncate(self.capacity);
    }

    /// Writes the grid as PNG; `Ok(false)` when there was nothing to show.
    pub fn write(&self, path: &Path) -> Result<bool, String> {
        if self.false_positives.is_empty() && self.false_negatives.is_empty() {
            return Ok(false);
        }
        let sections = [
            ("Worst false positives: good images with the highest scores", &self.false_positives),
            ("Worst false negatives: defective images with the lowest scores", &self.false_negatives),
        ];
        // Flow layout: tiles left to right, a new row when the next would pass MAX_WIDTH.
        let slot = |t: &Tile| {
            let caption = 7 * t.caption.chars().count().max(t.detail.chars().count()) as u32;
            t.picture.width().max(caption)
        };
        let title_h = 36u32;
        let row_h = PANEL + CAPTION + GAP;
        let mut placed: Vec<(&Tile, u32, u32)> = Vec::new();
        let mut texts: Vec<(String, (i32, i32), u32)> = Vec::new();
        let (mut y, mut width) = (GAP, 560u32);
        for (title, tiles) in sections {
            texts.push((title.to_string(), (GAP as i32, y as i32 + 6), 18));
            y += title_h;
            if tiles.is_empty() {
                texts.push(("(none)".into(), (GAP as i32, y as i32 + 4), 14));
                y += row_h;
                continue;
            }
            let mut x = GAP;
            for t in tiles.iter() {
                if x > GAP && x + slot(t) > MAX_WIDTH {
                    x = GAP;
                    y += row_h;
                }
                placed.push((t, x, y));
                texts.push((t.caption.clone(), (x as i32, (y + PANEL + 3) as i32), 13));
                texts.push((t.detail.clone(), (x as i32, (y + PANEL + 18) as i32), 12));
                x += slot(t) + GAP;
                width = width.max(x);
            }
            y += row_h;
        }
        let mut canvas = RgbImage::from_pixel(width, y + GAP, Rgb([255, 255, 255]));
        for (t, x, y) in placed {
            image::imageops::overlay(&mut canvas, &t.picture, i64::from(x), i64::from(y));
        }
        let (w, h) = canvas.dimensions();
        let mut buf = canvas.into_raw();
        draw_on(&mut buf, (w, h), |root| {
            for (text, pos, size) in &texts {
                let style = TextStyle::from((FAMILY, *size).into_font()).color(&BLACK);
                root.draw(&Text::new(text.clone(), *pos, style)).map_err(|e| e.to_string())?;
            }
            Ok(())
        })?;
        let img = RgbImage::from_raw(w, h, buf).ok_or("internal: gallery buffer of the wrong size")?;
        img.save(path).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        Ok(true)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_string() } else { format!("{}...", s.chars().take(max - 3).collect::<String>()) }
}

/// The image with its ground-truth outline beside the map overlay, scaled to [`PANEL`] pixels high.
fn panels(input: &RgbImage, d: &Detection, mask: &[bool], range: f32) -> RgbImage {
    let (w, h) = input.dimensions();
    let scale = f64::from(PANEL) / f64::from(h.max(1));
    let pw = ((f64::from(w) * scale).round() as u32).clamp(16, 2 * PANEL);
    let left = image::imageops::resize(input, pw, PANEL, FilterType::Triangle);
    let mut left = left;
    // The ground truth, scaled by nearest neighbour, outlined after scaling so the line stays visible.
    let small: Vec<bool> = (0..PANEL * pw)
        .map(|i| {
            let (x, y) = (i % pw, i / pw);
            let sx = ((f64::from(x) + 0.5) / f64::from(pw) * f64::from(w)) as usize;
            let sy = ((f64::from(y) + 0.5) / f64::from(PANEL) * f64::from(h)) as usize;
            mask.get(sy.min(h as usize - 1) * w as usize + sx.min(w as usize - 1)).copied().unwrap_or(false)
        })
        .collect();
    let inside = |x: i64, y: i64| {
        x >= 0 && y >= 0 && x < i64::from(pw) && y < i64::from(PANEL) && small[(y * i64::from(pw) + x) as usize]
    };
    for y in 0..i64::from(PANEL) {
        for x in 0..i64::from(pw) {
            if inside(x, y) && [(-1, 0), (1, 0), (0, -1), (0, 1)].iter().any(|(dx, dy)| !inside(x + dx, y + dy)) {
                left.put_pixel(x as u32, y as u32, Rgb([0, 220, 0]));
            }
        }
    }
    let overlay = if input.dimensions() == (d.anomaly_map.width as u32, d.anomaly_map.height as u32) {
        render::overlay(input, d, range)
    } else {
        render::heatmap(&d.anomaly_map, range)
    };
    let right = image::imageops::resize(&overlay, pw, PANEL, FilterType::Triangle);
    let mut out = RgbImage::from_pixel(2 * pw + 4, PANEL, Rgb([255, 255, 255]));
    image::imageops::overlay(&mut out, &left, 0, 0);
    image::imageops::overlay(&mut out, &right, i64::from(pw + 4), 0);
    out
}
