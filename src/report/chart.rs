//! Charts of the HTML report: lines drawn by plotters as inline SVG (no
//! script), with their points kept beside the drawing for a reader or a
//! test.

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

const W: u32 = 640;
const H: u32 = 330;

/// Line colours, distinguishable in print and for most colour vision.
const PALETTE: &[RGBColor] = &[
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
];

/// Escape text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of a chart.
pub(super) struct Line {
    pub(super) name: String,
    pub(super) points: Vec<(f64, f64)>,
    /// Draw a marker at each point (few points: levels, turns).
    pub(super) markers: bool,
}

impl Line {
    pub(super) fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Line {
            name: name.into(),
            points: points
                .into_iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .collect(),
            markers: false,
        }
    }

    pub(super) fn marked(mut self) -> Self {
        self.markers = true;
        self
    }
}

/// A chart to draw.
pub(super) struct Chart {
    pub(super) id: String,
    pub(super) title: String,
    pub(super) x_desc: String,
    pub(super) y_desc: String,
    pub(super) lines: Vec<Line>,
    /// The x axis is a percentile on a log scale of 1/(1−q).
    pub(super) percentile_x: bool,
}

impl Chart {
    pub(super) fn new(id: &str, title: &str, x_desc: &str, y_desc: &str) -> Self {
        Chart {
            id: id.to_string(),
            title: title.to_string(),
            x_desc: x_desc.to_string(),
            y_desc: y_desc.to_string(),
            lines: Vec::new(),
            percentile_x: false,
        }
    }

    pub(super) fn line(mut self, l: Line) -> Self {
        if !l.points.is_empty() {
            self.lines.push(l);
        }
        self
    }

    pub(super) fn has_data(&self) -> bool {
        self.lines.iter().any(|l| !l.points.is_empty())
    }
}

fn bounds(lines: &[Line]) -> ((f64, f64), f64) {
    let pts = lines.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    ((x0, x1), y1 * 1.08)
}

pub(super) fn percentile_label(x: &f64) -> String {
    let q = 1.0 - 1.0 / x.max(1.0);
    let p = q * 100.0;
    if p < 99.0 {
        format!("{p:.0}%")
    } else {
        let digits = (-(1.0 - q).log10()).round() as usize;
        format!("{p:.*}%", digits.saturating_sub(2))
    }
}

fn draw<X>(area: &DrawingArea<SVGBackend, Shift>, c: &Chart, x: X, y1: f64) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    area.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(46)
        .y_label_area_size(70)
        .build_cartesian_2d(x, 0f64..y1)
        .map_err(e)?;
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(c.x_desc.as_str())
        .y_desc(c.y_desc.as_str())
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(0xee, 0xee, 0xee))
        .bold_line_style(RGBColor(0xd8, 0xd8, 0xd8));
    if c.percentile_x {
        mesh.x_label_formatter(&percentile_label);
    }
    mesh.draw().map_err(e)?;
    for (i, l) in c.lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(e)?
            .label(l.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(3))
            });
        if l.markers {
            chart
                .draw_series(
                    l.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
                )
                .map_err(e)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(0xbb, 0xbb, 0xbb))
        .draw()
        .map_err(e)?;
    area.present().map_err(e)
}

/// The chart as an inline `<figure>`, or nothing when it has no data.
pub(super) fn render_chart(c: &Chart) -> String {
    if !c.has_data() {
        return String::new();
    }
    let ((x0, x1), y1) = bounds(&c.lines);
    let mut svg = String::new();
    let drawn = {
        let area = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        if c.percentile_x {
            draw(&area, c, (1f64..x1.max(10.0)).log_scale(), y1)
        } else {
            draw(&area, c, x0..x1, y1)
        }
    };
    if let Err(e) = drawn {
        return format!(
            "<figure class=\"chart\" id=\"chart-{}\"><figcaption>{}</figcaption><p>chart not drawn: {}</p></figure>\n",
            esc(&c.id),
            esc(&c.title),
            esc(&e)
        );
    }
    // A viewBox and no fixed size: the chart scales with the page.
    let svg = svg.replacen(
        &format!("<svg width=\"{W}\" height=\"{H}\" "),
        &format!("<svg role=\"img\" aria-label=\"{}\" ", esc(&c.title)),
        1,
    );
    format!(
        "<figure class=\"chart\" id=\"chart-{}\" data-lines=\"{}\" data-points=\"{}\">\n<figcaption>{}</figcaption>\n{svg}</figure>\n",
        esc(&c.id),
        c.lines.len(),
        esc(&points_json(c)),
        esc(&c.title)
    )
}

/// The chart's data as JSON, `{"line": [[x, y], …]}`: the numbers behind
/// the drawing, for a reader (or a test) that wants them.
fn points_json(c: &Chart) -> String {
    let m: serde_json::Map<String, serde_json::Value> = c
        .lines
        .iter()
        .map(|l| (l.name.clone(), serde_json::json!(l.points)))
        .collect();
    serde_json::Value::Object(m).to_string()
}
