//! The memory budget chart: where RAM goes now and after the recommendations, as an SVG.

use plotters::prelude::*;

use super::recommend::{MemoryBudget, MemoryParts};

const WIDTH: u32 = 560;
const HEIGHT: u32 = 200;

const PARTS: [(&str, RGBColor); 4] = [
    ("shared_buffers", RGBColor(37, 99, 235)),
    ("work_mem × connections", RGBColor(234, 88, 12)),
    ("maintenance", RGBColor(22, 163, 74)),
    ("OS cache", RGBColor(148, 163, 184)),
];

fn values(p: &MemoryParts) -> [f64; 4] {
    let gb = |kb: u64| kb as f64 / 1_048_576.0;
    [
        gb(p.shared_buffers_kb),
        gb(p.work_mem_total_kb),
        gb(p.maintenance_kb),
        gb(p.os_cache_kb),
    ]
}

/// Two stacked bars (now, after) in GB with a line at the machine's RAM.
pub fn memory_budget_svg(b: &MemoryBudget) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let _ = draw(&root, b);
        let _ = root.present();
    }
    svg
}

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    b: &MemoryBudget,
) -> Option<()> {
    root.fill(&WHITE).ok()?;
    let ram = b.ram_kb as f64 / 1_048_576.0;
    let rows = [("after", values(&b.after)), ("now", values(&b.now))];
    let widest = rows
        .iter()
        .map(|(_, v)| v.iter().sum::<f64>())
        .fold(ram, f64::max)
        .max(0.001);
    let mut chart = ChartBuilder::on(root)
        .caption("Memory budget (GB)", ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..widest * 1.1, 0.0..2.0)
        .ok()?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(RGBColor(235, 238, 242))
        .x_labels(6)
        .y_labels(2)
        .y_label_formatter(&|y: &f64| {
            if *y < 1.0 {
                "after".into()
            } else {
                "now".into()
            }
        })
        .x_label_formatter(&|x: &f64| format!("{x:.1}"))
        .label_style(("sans-serif", 11))
        .draw()
        .ok()?;
    for (row, (_, v)) in rows.iter().enumerate() {
        let y0 = row as f64 + 0.2;
        let y1 = row as f64 + 0.8;
        let mut x = 0.0;
        for (i, (label, color)) in PARTS.iter().enumerate() {
            let w = v[i];
            let series = chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x, y0), (x + w, y1)],
                    color.filled(),
                )))
                .ok()?;
            if row == 0 {
                series.label(*label).legend(move |(lx, ly)| {
                    Rectangle::new([(lx, ly - 5), (lx + 10, ly + 5)], color.filled())
                });
            }
            x += w;
        }
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(ram, 0.0), (ram, 2.0)],
            RGBColor(220, 38, 38).stroke_width(2),
        )))
        .ok()?
        .label(format!("RAM {ram:.1} GB"))
        .legend(|(lx, ly)| {
            PathElement::new(
                vec![(lx, ly), (lx + 10, ly)],
                RGBColor(220, 38, 38).stroke_width(2),
            )
        });
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .label_font(("sans-serif", 10))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .ok()?;
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_an_svg_with_the_ram_line() {
        let b = MemoryBudget {
            ram_kb: 8 * 1_048_576,
            now: MemoryParts {
                shared_buffers_kb: 131072,
                work_mem_total_kb: 409600,
                maintenance_kb: 65536,
                os_cache_kb: 4 * 1_048_576,
            },
            after: MemoryParts {
                shared_buffers_kb: 2 * 1_048_576,
                work_mem_total_kb: 2 * 1_048_576,
                maintenance_kb: 524288,
                os_cache_kb: 6 * 1_048_576,
            },
        };
        let svg = memory_budget_svg(&b);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("RAM 8.0 GB"));
        assert!(svg.contains("shared_buffers"));
    }
}
