//! PNG plots of an evaluation, drawn with `plotters` into memory and saved with `image`. Text uses a bundled
//! subset of DejaVu Sans (`cli/assets/`), so nothing depends on the system's fonts.

use std::path::Path;
use std::sync::OnceLock;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::coord::types::RangedCoordf64;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The bundled font (ASCII and a few symbols; see `cli/assets/LICENSE-DejaVu.txt`).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-Loupe.ttf");

/// The family every text of the plots uses.
pub const FAMILY: &str = "sans-serif";

/// Series colours (colour-blind friendly: Okabe-Ito).
pub const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// Registers the bundled font once; an error here means the embedded font is broken.
pub fn ensure_font() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the bundled plot font cannot be parsed".to_string())
    })
    .clone()
}

/// Draws into a white `w x h` canvas with `draw`, then saves it as PNG at `path`.
pub fn render_png(
    path: &Path,
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    draw_on(&mut buf, (w, h), draw)?;
    save_png(path, RgbImage::from_raw(w, h, buf))
}

/// Draws onto an existing RGB buffer.
pub fn draw_on(
    buf: &mut [u8],
    (w, h): (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<(), String>,
) -> Result<(), String> {
    ensure_font()?;
    let backend = BitMapBackend::with_buffer_and_format(buf, (w, h)).map_err(|e| e.to_string())?;
    let root = backend.into_drawing_area();
    draw(&root)?;
    root.present().map_err(|e| e.to_string())
}

fn save_png(path: &Path, img: Option<RgbImage>) -> Result<(), String> {
    let img = img.ok_or("internal: plot buffer of the wrong size")?;
    img.save(path).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// A labelled curve.
pub struct Series<'a> {
    /// Legend text.
    pub label: String,
    /// Points.
    pub points: &'a [(f64, f64)],
    /// Index into [`COLOURS`] (wrapping).
    pub colour: usize,
    /// Drawn dashed (a reference beside the solid curves, e.g. the baseline).
    pub dashed: bool,
}

/// Curves on [0, x_max] x [0, 1] with a legend; `diagonal` adds the chance line of a ROC plot.
pub fn curves(
    path: &Path,
    title: &str,
    axes: (&str, &str),
    x_max: f64,
    series: &[Series<'_>],
    diagonal: bool,
) -> Result<(), String> {
    render_png(path, (640, 520), |root| {
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(0f64..x_max, 0f64..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(axes.0)
            .y_desc(axes.1)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        if diagonal {
            chart
                .draw_series(DashedLineSeries::new([(0.0, 0.0), (x_max, x_max)], 6, 4, RGBColor(150, 150, 150).into()))
                .map_err(err)?;
        }
        for s in series {
            let colour = COLOURS[s.colour % COLOURS.len()];
            let points = s.points.iter().copied();
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(points, 7, 5, colour.stroke_width(2)))
                    .map_err(err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| {
                        DashedPathElement::new(vec![(x, y), (x + 22, y)], 6, 4, colour.stroke_width(3))
                    });
            } else {
                chart
                    .draw_series(LineSeries::new(points, colour.stroke_width(2)))
                    .map_err(err)?
                    .label(s.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(3)));
            }
        }
        if !series.is_empty() {
            draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        }
        Ok(())
    })
}

/// The series legend, in the same style on every chart.
fn draw_legend<'a, 'b: 'a>(
    chart: &mut ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

/// Grouped bars in [0, 1]: one group per name, one bar per series; a missing value draws no bar and an `n/a`.
pub fn bars(path: &Path, title: &str, groups: &[String], series: &[(String, Vec<Option<f64>>)]) -> Result<(), String> {
    let width = (160 + 90 * groups.len().max(1) * series.len().max(1) / 2).clamp(640, 2400) as u32;
    render_png(path, (width, 520), |root| {
        let err = |e: DrawingAreaErrorKind<_>| e.to_string();
        root.fill(&WHITE).map_err(err)?;
        let n = groups.len().max(1) as f64;
        // Headroom above 1 for the legend (about 20 px a line of the ~420 px plot), so it covers no bar.
        let legend = (20 * series.len() + 22) as f64 / 420.0;
        let top = (1.0 / (1.0 - legend)).max(1.05);
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FAMILY, 22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(54)
            .build_cartesian_2d(0f64..n, 0f64..top)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_label_formatter(&|v| if *v <= 1.0 + 1e-9 { format!("{v:.1}") } else { String::new() })
            .y_desc("value")
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        let k = series.len().max(1) as f64;
        let bar = 0.8 / k;
        for (j, (label, values)) in series.iter().enumerate() {
            let colour = COLOURS[j % COLOURS.len()];
            let rects = values.iter().enumerate().filter_map(|(i, v)| {
                let x0 = i as f64 + 0.1 + j as f64 * bar;
                v.map(|v| Rectangle::new([(x0, 0.0), (x0 + bar * 0.92, v.clamp(0.0, 1.0))], colour.filled()))
            });
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(label.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
            for (i, v) in values.iter().enumerate() {
                let x = i as f64 + 0.1 + (j as f64 + 0.1) * bar;
                let (text, y) = match v {
                    Some(v) => (format!("{v:.2}"), v.clamp(0.0, 1.0) + 0.01),
                    None => ("n/a".to_string(), 0.01),
                };
                let style = TextStyle::from((FAMILY, 11).into_font()).color(&BLACK);
                chart.draw_series(std::iter::once(Text::new(text, (x, y + 0.025), style))).map_err(err)?;
            }
        }
        // Group names under the axis, centred on their group.
        let style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, name) in groups.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
            root.draw(&Text::new(name.clone(), (px, py + 8), style.clone())).map_err(err)?;
        }
        draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_drawn_with_the_bundled_font() {
        let dir = tempfile::tempdir().unwrap();
        let roc = dir.path().join("roc.png");
        let pts = [(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)];
        let series = [
            Series { label: "image".into(), points: &pts, colour: 0, dashed: false },
            Series { label: "baseline".into(), points: &pts[1..], colour: 0, dashed: true },
        ];
        curves(&roc, "ROC", ("FPR", "TPR"), 1.0, &series, true).unwrap();
        let img = image::open(&roc).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (640, 520));
        // Text and lines leave dark pixels; a blank canvas would have none.
        let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
        assert!(dark > 500, "{dark} dark pixels");
        let bars_png = dir.path().join("bars.png");
        bars(&bars_png, "per type", &["a".into(), "b".into()], &[("AUROC".into(), vec![Some(0.5), None])]).unwrap();
        assert!(image::open(&bars_png).is_ok());
    }
}
