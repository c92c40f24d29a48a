//! Charts rendered by plotters to SVG, so the webview only displays images and the same
//! renderer serves exported reports.

use chrono::{DateTime, Local, TimeZone, Utc};
use plotters::prelude::*;

const WIDTH: u32 = 560;
const HEIGHT: u32 = 220;

/// Line colours, in the order lines are drawn.
const PALETTE: [RGBColor; 6] = [
    RGBColor(37, 99, 235),
    RGBColor(220, 38, 38),
    RGBColor(22, 163, 74),
    RGBColor(217, 119, 6),
    RGBColor(124, 58, 237),
    RGBColor(8, 145, 178),
];

/// One line of a chart.
#[derive(Debug, Clone, Default)]
pub struct Line {
    /// Shown in the legend when the chart has more than one line (or a reference mark).
    pub label: String,
    pub points: Vec<(DateTime<Utc>, f64)>,
}

/// A time series chart: one or more lines, optional horizontal marks (a target, a limit).
#[derive(Debug, Clone, Default)]
pub struct TimeChart {
    pub title: String,
    pub unit: String,
    pub lines: Vec<Line>,
    /// Fixes the y axis (e.g. 0-100 %); otherwise from 0 to a little above the highest value.
    pub y_range: Option<(f64, f64)>,
    /// Horizontal reference lines: label and value, drawn dashed.
    pub marks: Vec<(String, f64)>,
    /// The time span shown; otherwise the span of the points.
    pub x_range: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Text shown in the middle when there is nothing to draw.
    pub empty_text: String,
}

/// A time series line chart as a complete SVG document. `y_range` fixes the axis (e.g. 0-100 %).
pub fn line_chart_svg(
    title: &str,
    unit: &str,
    points: &[(DateTime<Utc>, f64)],
    y_range: Option<(f64, f64)>,
) -> String {
    TimeChart {
        title: title.to_string(),
        unit: unit.to_string(),
        lines: vec![Line {
            label: String::new(),
            points: points.to_vec(),
        }],
        y_range,
        empty_text: "collecting samples…".into(),
        ..Default::default()
    }
    .svg()
}

/// How times on the x axis are written for a span of `span_ms`: time of day for short spans,
/// with the date once the span covers more than a day or so.
pub fn time_label_format(span_ms: i64) -> &'static str {
    const HOUR: i64 = 3_600_000;
    if span_ms <= 2 * HOUR {
        "%H:%M:%S"
    } else if span_ms <= 30 * HOUR {
        "%H:%M"
    } else if span_ms <= 8 * 24 * HOUR {
        "%b %d %H:%M"
    } else {
        "%b %d"
    }
}

/// A y axis label: compact (k, M, G) for large values, decimals for small axes.
pub fn axis_number(v: f64, axis_max: f64) -> String {
    let a = v.abs();
    if a >= 1e12 {
        format!("{:.1}T", v / 1e12)
    } else if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if axis_max < 0.1 {
        format!("{v:.3}")
    } else if axis_max < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

impl TimeChart {
    fn point_count(&self) -> usize {
        self.lines.iter().map(|l| l.points.len()).sum()
    }

    /// The chart as a complete SVG document.
    pub fn svg(&self) -> String {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
            let _ = self.draw(&root);
            let _ = root.present();
        }
        svg
    }

    fn x_bounds(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        if let Some((a, b)) = self.x_range.filter(|(a, b)| a < b) {
            return (a, b);
        }
        let times = self.lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let (min, max) = times.fold((None, None), |(lo, hi), t| {
            (
                Some(lo.map_or(t, |l: DateTime<Utc>| l.min(t))),
                Some(hi.map_or(t, |h: DateTime<Utc>| h.max(t))),
            )
        });
        match (min, max) {
            (Some(a), Some(b)) if a < b => (a, b),
            (Some(a), _) => (a - chrono::Duration::seconds(60), a),
            _ => {
                let now = Utc::now();
                (now - chrono::Duration::seconds(60), now)
            }
        }
    }

    fn draw(&self, root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>) -> Option<()> {
        root.fill(&WHITE).ok()?;
        let (x0, x1) = self.x_bounds();
        let (y0, y1) = self.y_range.unwrap_or_else(|| {
            let max = self
                .lines
                .iter()
                .flat_map(|l| l.points.iter().map(|p| p.1))
                .chain(self.marks.iter().map(|m| m.1))
                .fold(0.0_f64, f64::max);
            (0.0, if max > 0.0 { max * 1.15 } else { 1.0 })
        });
        let format = time_label_format((x1 - x0).num_milliseconds());
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, y0..y1)
            .ok()?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(235, 238, 242))
            // One light line between labelled ones: plotters' default of ten per gap makes
            // about a hundred elements per chart, which the webview re-parses on every refresh.
            .max_light_lines(1)
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|t: &DateTime<Utc>| {
                t.with_timezone(&Local).format(format).to_string()
            })
            .y_label_formatter(&|v: &f64| axis_number(*v, y1))
            .y_desc(&self.unit)
            .label_style(("sans-serif", 11))
            .draw()
            .ok()?;
        let legend = self.lines.len() > 1 || !self.marks.is_empty();
        for (i, (label, value)) in self.marks.iter().enumerate() {
            let colour = RGBColor(100, 100, 100);
            let v = *value;
            let dashes = dashed(x0, x1, v);
            let s = chart
                .draw_series(
                    dashes
                        .into_iter()
                        .map(move |seg| PathElement::new(seg, colour.stroke_width(1))),
                )
                .ok()?;
            if legend && i < 3 {
                s.label(label.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(1))
                });
            }
        }
        if self.point_count() == 0 {
            let text = if self.empty_text.is_empty() {
                "no data in this range"
            } else {
                &self.empty_text
            };
            root.draw(&Text::new(
                text.to_string(),
                ((WIDTH / 2 - 60) as i32, (HEIGHT / 2) as i32),
                ("sans-serif", 13)
                    .into_font()
                    .color(&RGBColor(120, 120, 120)),
            ))
            .ok()?;
            return Some(());
        }
        if self.lines.len() == 1 && self.marks.is_empty() {
            let line = PALETTE[0];
            chart
                .draw_series(
                    AreaSeries::new(thin(&self.lines[0].points), y0, line.mix(0.12))
                        .border_style(line.stroke_width(2)),
                )
                .ok()?;
            return Some(());
        }
        for (i, l) in self.lines.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let s = chart
                .draw_series(LineSeries::new(thin(&l.points), colour.stroke_width(2)))
                .ok()?;
            if legend {
                s.label(l.label.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
                });
            }
        }
        if legend {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.8))
                .border_style(RGBColor(220, 220, 220))
                .label_font(("sans-serif", 11))
                .draw()
                .ok()?;
        }
        Some(())
    }
}

/// A horizontal dashed line at `y` from `x0` to `x1`, as segments.
fn dashed(x0: DateTime<Utc>, x1: DateTime<Utc>, y: f64) -> Vec<Vec<(DateTime<Utc>, f64)>> {
    let span = (x1 - x0).num_milliseconds().max(1);
    let step = span / 60;
    let mut out = Vec::new();
    let mut t = 0;
    while t < span {
        let a = x0 + chrono::Duration::milliseconds(t);
        let b = x0 + chrono::Duration::milliseconds((t + step * 2 / 3).min(span));
        out.push(vec![(a, y), (b, y)]);
        t += step.max(1);
    }
    out
}

/// Buckets a line is thinned to: about one per two pixels of the plot's width.
const THIN_BUCKETS: usize = 250;

/// A line with at most two points per bucket of time (its lowest and highest, in time order),
/// so a spike survives and the SVG stays the same size however many points the line has.
/// Points must be in time order.
fn thin(points: &[(DateTime<Utc>, f64)]) -> Vec<(DateTime<Utc>, f64)> {
    if points.len() <= 2 * THIN_BUCKETS {
        return points.to_vec();
    }
    let t0 = points[0].0.timestamp_millis();
    let span = (points[points.len() - 1].0.timestamp_millis() - t0).max(1) as f64;
    let bucket_of = |t: DateTime<Utc>| {
        (((t.timestamp_millis() - t0) as f64 / span * THIN_BUCKETS as f64) as usize)
            .min(THIN_BUCKETS - 1)
    };
    let mut out = Vec::with_capacity(2 * THIN_BUCKETS + 2);
    let mut i = 0;
    while i < points.len() {
        let b = bucket_of(points[i].0);
        let (mut lo, mut hi) = (i, i);
        let mut j = i + 1;
        while j < points.len() && bucket_of(points[j].0) == b {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        let (a, z) = (lo.min(hi), lo.max(hi));
        out.push(points[a]);
        if z != a {
            out.push(points[z]);
        }
        i = j;
    }
    out
}

/// Milliseconds since the epoch as a time for a chart.
pub fn utc_ms(ms: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_shows_dates_for_long_ranges() {
        const H: i64 = 3_600_000;
        assert_eq!(time_label_format(15 * 60_000), "%H:%M:%S");
        assert_eq!(time_label_format(H), "%H:%M:%S");
        assert_eq!(time_label_format(24 * H), "%H:%M");
        assert_eq!(time_label_format(7 * 24 * H), "%b %d %H:%M");
        assert_eq!(time_label_format(30 * 24 * H), "%b %d");
    }

    #[test]
    fn long_lines_are_thinned_but_keep_their_spikes() {
        let t0 = 1_700_000_000_000;
        let points: Vec<_> = (0..10_000)
            .map(|i| {
                (
                    utc_ms(t0 + i * 1000).unwrap(),
                    if i == 4321 { 99.0 } else { 1.0 },
                )
            })
            .collect();
        let thinned = thin(&points);
        assert!(
            thinned.len() <= 2 * THIN_BUCKETS,
            "{} points",
            thinned.len()
        );
        assert!(thinned.iter().any(|p| p.1 == 99.0), "the spike was dropped");
        assert!(
            thinned.windows(2).all(|w| w[0].0 < w[1].0),
            "out of time order"
        );
        assert_eq!(thinned[0], points[0]);
        let short = &points[..100];
        assert_eq!(thin(short), short.to_vec());
        // The chart of 10,000 points is no bigger than that of 500.
        let svg = |p: &[(DateTime<Utc>, f64)]| line_chart_svg("t", "u", p, None).len();
        assert!(svg(&points) < svg(&points[..500]) + 2_000);
    }

    #[test]
    fn axis_numbers_stay_short() {
        assert_eq!(axis_number(2_500_000.0, 3e6), "2.5M");
        assert_eq!(axis_number(0.25, 0.5), "0.25");
        assert_eq!(axis_number(40.0, 100.0), "40");
        assert_eq!(axis_number(12_000.0, 20_000.0), "12k");
    }

    #[test]
    fn a_week_long_chart_names_days_and_draws_every_line_and_mark() {
        let day = 86_400_000;
        let t0 = 1_700_000_000_000;
        let line = |label: &str, v: f64| Line {
            label: label.into(),
            points: (0..7)
                .map(|d| (utc_ms(t0 + d * day).unwrap(), v + d as f64))
                .collect(),
        };
        let svg = TimeChart {
            title: "Connections".into(),
            unit: "sessions".into(),
            lines: vec![line("active", 1.0), line("idle", 5.0)],
            marks: vec![("max_connections".into(), 100.0)],
            x_range: Some((utc_ms(t0).unwrap(), utc_ms(t0 + 7 * day).unwrap())),
            ..Default::default()
        }
        .svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("max_connections"));
        assert!(svg.contains("idle"));
        // Month abbreviation on the time axis (Nov 2023 in any time zone).
        assert!(svg.contains("Nov "), "no dates on the axis");
        let empty = TimeChart {
            title: "Deadlocks".into(),
            ..Default::default()
        }
        .svg();
        assert!(empty.contains("no data in this range"));
    }
}
