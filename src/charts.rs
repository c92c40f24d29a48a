//! Charts rendered by plotters to SVG, so the webview only displays images and the same
//! renderer serves exported reports.

use chrono::{DateTime, Local, Utc};
use plotters::prelude::*;

const WIDTH: u32 = 560;
const HEIGHT: u32 = 220;

/// A time series line chart as a complete SVG document. `y_range` fixes the axis (e.g. 0-100 %).
pub fn line_chart_svg(
    title: &str,
    unit: &str,
    points: &[(DateTime<Utc>, f64)],
    y_range: Option<(f64, f64)>,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = draw(&root, title, unit, points, y_range);
        let _ = root.present();
    }
    svg
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    unit: &str,
    points: &[(DateTime<Utc>, f64)],
    y_range: Option<(f64, f64)>,
) -> Option<()> {
    root.fill(&WHITE).ok()?;
    let line = RGBColor(37, 99, 235);
    let (x0, x1) = match (points.first(), points.last()) {
        (Some(a), Some(b)) if a.0 < b.0 => (a.0, b.0),
        (Some(a), _) => (a.0 - chrono::Duration::seconds(60), a.0),
        _ => {
            let now = Utc::now();
            (now - chrono::Duration::seconds(60), now)
        }
    };
    let (y0, y1) = y_range.unwrap_or_else(|| {
        let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
        (0.0, if max > 0.0 { max * 1.15 } else { 1.0 })
    });
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(48)
        .build_cartesian_2d(x0..x1, y0..y1)
        .ok()?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(235, 238, 242))
        .x_labels(5)
        .y_labels(5)
        .x_label_formatter(&|t: &DateTime<Utc>| {
            t.with_timezone(&Local).format("%H:%M:%S").to_string()
        })
        .y_label_formatter(&|v: &f64| format!("{v:.0}"))
        .y_desc(unit)
        .label_style(("sans-serif", 11))
        .draw()
        .ok()?;
    if points.is_empty() {
        root.draw(&Text::new(
            "collecting samples…",
            ((WIDTH / 2 - 60) as i32, (HEIGHT / 2) as i32),
            ("sans-serif", 13)
                .into_font()
                .color(&RGBColor(120, 120, 120)),
        ))
        .ok()?;
    } else {
        chart
            .draw_series(
                AreaSeries::new(points.iter().copied(), y0, line.mix(0.12))
                    .border_style(line.stroke_width(2)),
            )
            .ok()?;
    }
    Some(())
}
