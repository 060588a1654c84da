//! Figures with plotters: retrieval percentage against an axis (Fig. 3, 7, 8 style) as PNG and
//! SVG, and picture grids (original / corrupted / recalled rows, Fig. 4, 6, 9, 10 style) as PNG.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let png = dir.path().join("curve.png");
//! pcmem_harness::plots::curve(&png, "training", "energy", &[40.0, 12.0, 5.0, 3.5])?;
//! assert!(std::fs::metadata(&png)?.len() > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{HarnessError, Result};

fn plot_err(path: &Path) -> impl Fn(String) -> HarnessError + '_ {
    move |reason| HarnessError::Plot {
        path: path.to_path_buf(),
        reason,
    }
}

/// Draws `k` images per named row (each a flat channel-major buffer of images of `shape` in
/// [0, 1]) into one PNG, upscaled so that small images stay visible.
pub fn picture_rows(
    path: &Path,
    shape: (usize, usize, usize),
    k: usize,
    rows: &[(&str, &[f32])],
) -> Result<()> {
    let (c, h, w) = shape;
    // Small images are upscaled to stay visible; large ones (ImageNet) are subsampled to keep
    // the files small.
    let scale = (96 / h.max(1)).clamp(1, 4);
    let step = h.div_ceil(112).max(1);
    let (sh, sw) = (h.div_ceil(step), w.div_ceil(step));
    let (cw, ch) = (sw * scale + 4, sh * scale + 4);
    let label_w = 90;
    let size = ((label_w + k * cw) as u32, (rows.len() * ch + 4) as u32);
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    let err = plot_err(path);
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
        for (r, (name, data)) in rows.iter().enumerate() {
            let y0 = r * ch + 2;
            root.draw(&Text::new(
                name.to_string(),
                (4, (y0 + ch / 2) as i32 - 6),
                ("sans-serif", 14),
            ))
            .map_err(|e| err(e.to_string()))?;
            for i in 0..k.min(data.len() / (c * h * w)) {
                let img = &data[i * c * h * w..(i + 1) * c * h * w];
                let x0 = label_w + i * cw + 2;
                for y in 0..sh {
                    for x in 0..sw {
                        let idx = (y * step) * w + x * step;
                        let px = |ch: usize| {
                            (img[ch.min(c - 1) * h * w + idx].clamp(0.0, 1.0) * 255.0).round() as u8
                        };
                        let color = RGBColor(px(0), px(1), px(2));
                        let (sx, sy) = ((x0 + x * scale) as i32, (y0 + y * scale) as i32);
                        root.draw(&Rectangle::new(
                            [(sx, sy), (sx + scale as i32, sy + scale as i32)],
                            color.filled(),
                        ))
                        .map_err(|e| err(e.to_string()))?;
                    }
                }
            }
        }
        root.present().map_err(|e| err(e.to_string()))?;
    }
    write_png(path, size, pixels)
}

/// Encodes an RGB buffer as PNG in memory and writes it atomically: a full disk is an error,
/// never a cut file.
fn write_png(path: &Path, (w, h): (u32, u32), pixels: Vec<u8>) -> Result<()> {
    let img = image::RgbImage::from_raw(w, h, pixels).ok_or_else(|| HarnessError::Plot {
        path: path.to_path_buf(),
        reason: "pixel buffer of the wrong size".into(),
    })?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| HarnessError::Plot {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    crate::atomic::write_atomic(path, bytes.get_ref())
}

/// One line of a capacity plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, retrieved %) points, sorted by x.
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// What the y axis of a line plot shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum YAxis {
    /// Retrieved images in percent (0 to 100).
    RetrievedPercent,
    /// Median per-image recall MSE on a log scale, with the threshold under which an image
    /// counts as recalled drawn across.
    MedianMse {
        /// The recall threshold (per-image MSE).
        threshold: f64,
    },
}

fn draw_lines<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    series: &[Series],
    y: YAxis,
) -> std::result::Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let (lo, hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(0.5);
    let x_range = (lo - pad)..(hi + pad);
    // Whole-number axes (N, depth) get whole-number labels only.
    let whole = xs.iter().all(|x| x.fract() == 0.0);
    let fmt_x = move |v: &f64| {
        if !whole {
            format!("{v}")
        } else if (v - v.round()).abs() < 1e-6 {
            format!("{}", v.round() as i64)
        } else {
            String::new()
        }
    };
    match y {
        YAxis::RetrievedPercent => {
            let mut chart = chart_builder(root, title)
                .build_cartesian_2d(x_range, -2f64..102f64)
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .x_label_formatter(&fmt_x)
                .y_desc("retrieved (%)")
                .draw()
                .map_err(e)?;
            draw_series(&mut chart, series, None)
        }
        YAxis::MedianMse { threshold } => {
            // Zero errors (exact recall) have no place on a log axis: drawn at the bottom.
            let ys: Vec<f64> = series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1))
                .filter(|v| v.is_finite() && *v > 0.0)
                .chain([threshold])
                .collect();
            let y_lo = ys.iter().cloned().fold(f64::INFINITY, f64::min) / 2.0;
            let y_hi = ys.iter().cloned().fold(0.0, f64::max) * 2.0;
            let floor = |s: &Series| Series {
                label: s.label.clone(),
                points: s.points.iter().map(|&(x, v)| (x, v.max(y_lo))).collect(),
            };
            let series: Vec<Series> = series.iter().map(floor).collect();
            // Ticks at 1, 2 and 5 times the powers of ten in range.
            let ticks: Vec<f64> = (y_lo.log10().floor() as i32..=y_hi.log10().ceil() as i32)
                .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
                .filter(|v| (y_lo..=y_hi).contains(v))
                .collect();
            let mut chart = chart_builder(root, title)
                .build_cartesian_2d(
                    x_range.clone(),
                    (y_lo..y_hi).log_scale().with_key_points(ticks),
                )
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .x_label_formatter(&fmt_x)
                .y_desc("median recall MSE")
                .y_label_formatter(&|v| format!("{v:.0e}"))
                .draw()
                .map_err(e)?;
            let line = vec![(x_range.start, threshold), (x_range.end, threshold)];
            draw_series(
                &mut chart,
                &series,
                Some((line, format!("threshold {threshold}"))),
            )
        }
    }
}

fn chart_builder<'a, 'b, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    title: &'b str,
) -> ChartBuilder<'a, 'b, DB> {
    let mut b = ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    b
}

/// The lines of `series` (and a black reference line) with their legend, on a chart whose
/// axes are drawn.
fn draw_series<'a, DB: DrawingBackend + 'a, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[Series],
    reference: Option<(Vec<(f64, f64)>, String)>,
) -> std::result::Result<(), String>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    if let Some((points, label)) = reference {
        chart
            .draw_series(LineSeries::new(points, BLACK.stroke_width(1)))
            .map_err(e)?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(e)?;
    chart.plotting_area().present().map_err(e)
}

/// Retrieval percentage against `x_label`, one line per series, written as `<stem>.png` and
/// `<stem>.svg`.
pub fn capacity(stem: &Path, title: &str, x_label: &str, series: &[Series]) -> Result<()> {
    lines(stem, title, x_label, series, YAxis::RetrievedPercent)
}

/// One line per series against `x_label`, the y axis as `y` says, written as `<stem>.png`
/// and `<stem>.svg`.
pub fn lines(stem: &Path, title: &str, x_label: &str, series: &[Series], y: YAxis) -> Result<()> {
    // Stems hold dots (e.g. `top_0.5`): append, do not replace, the extension.
    let png = PathBuf::from(format!("{}.png", stem.display()));
    let svg = PathBuf::from(format!("{}.svg", stem.display()));
    let size = (720u32, 480u32);
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    draw_lines(
        &BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area(),
        title,
        x_label,
        series,
        y,
    )
    .map_err(plot_err(&png))?;
    write_png(&png, size, pixels)?;
    let mut text = String::new();
    draw_lines(
        &SVGBackend::with_string(&mut text, size).into_drawing_area(),
        title,
        x_label,
        series,
        y,
    )
    .map_err(plot_err(&svg))?;
    crate::atomic::write_atomic(&svg, text.as_bytes())
}

/// A training curve (loss per epoch, log scale) as a PNG: what `pcmem store` saves beside a
/// stored memory. Non-positive or non-finite values are left out.
pub fn curve(path: &Path, title: &str, y_label: &str, values: &[f64]) -> Result<()> {
    let size = (720u32, 480u32);
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    let points: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite() && **v > 0.0)
        .map(|(i, &v)| ((i + 1) as f64, v))
        .collect();
    let err = plot_err(path);
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        let e = |x: DrawingAreaErrorKind<_>| err(x.to_string());
        root.fill(&WHITE).map_err(e)?;
        let (lo, hi) = points
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.1), b.max(p.1))
            });
        let (lo, hi) = if lo.is_finite() {
            (lo, hi)
        } else {
            (1e-6, 1.0)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                1f64..(points.len().max(2) as f64),
                (lo * 0.8..hi * 1.25).log_scale(),
            )
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_label)
            .y_label_formatter(&|v| format!("{v:.1e}"))
            .draw()
            .map_err(e)?;
        chart
            .draw_series(LineSeries::new(points, PALETTE[0].stroke_width(2)))
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    write_png(path, size, pixels)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Median errors of zero (exact recall) and a single point draw (at the bottom of the log
    /// axis) instead of failing; the PNG and the SVG are written.
    #[test]
    fn error_plots_take_zero_and_single_points() {
        let dir = tempfile::tempdir().unwrap();
        for points in [vec![(1.0, 0.0), (2.0, 3e-3)], vec![(5.0, 0.0)], vec![]] {
            let stem = dir.path().join(format!("e{}", points.len()));
            let series = [Series {
                label: "m".into(),
                points,
            }];
            let y = YAxis::MedianMse { threshold: 0.005 };
            lines(&stem, "t", "n_images", &series, y).unwrap();
            for ext in ["png", "svg"] {
                let f = PathBuf::from(format!("{}.{ext}", stem.display()));
                assert!(std::fs::metadata(&f).unwrap().len() > 0, "{f:?}");
            }
        }
    }
}
