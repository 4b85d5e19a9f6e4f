//! Line charts as inline SVG: no script, no external asset, no font
//! download. Every string drawn is escaped; a `None` value is a gap in the
//! line (nothing to divide by is not 0).

use super::html_escape;
use std::fmt::Write as _;

/// Drawing area of every chart (SVG user units).
pub const WIDTH: f64 = 480.0;
pub const HEIGHT: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 24.0;

/// How a chart's values read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unit {
    /// A count (exposures, a delta of exposures).
    Count,
    /// A ratio 0..1, drawn on a fixed 0..1 axis, read as a percentage.
    Ratio,
    /// A duration in seconds, read in hours or days.
    Seconds,
    /// A score 0..1 on a fixed axis, read as a number.
    Score,
}

impl Unit {
    /// The value as the page reads it.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Count => {
                if v.fract() == 0.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v:.1}")
                }
            }
            Unit::Ratio => format!("{:.1}%", v * 100.0),
            Unit::Score => format!("{v:.2}"),
            Unit::Seconds => {
                if v < 3_600.0 {
                    format!("{:.0} min", v / 60.0)
                } else if v < 172_800.0 {
                    format!("{:.1} h", v / 3_600.0)
                } else {
                    format!("{:.1} d", v / 86_400.0)
                }
            }
        }
    }
}

/// One line of a chart: its legend name, one value per time (None: gap),
/// and its stroke.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub values: Vec<Option<f64>>,
    pub color: &'static str,
    /// `stroke-dasharray`, for telling lines apart without colour.
    pub dash: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct Chart {
    /// Element id prefix (ASCII, from the page, not from config).
    pub id: String,
    pub title: String,
    pub unit: Unit,
    /// Sample times (unix seconds), ascending; every line has one value per time.
    pub times: Vec<i64>,
    pub lines: Vec<Line>,
}

/// The y-axis range: fixed 0..1 for ratios and scores; otherwise from 0
/// (or the lowest value, when negative) to the highest value rounded up to
/// 1, 2 or 5 times a power of ten (at least 1).
pub fn y_range(unit: Unit, values: impl Iterator<Item = f64>) -> (f64, f64) {
    if matches!(unit, Unit::Ratio | Unit::Score) {
        return (0.0, 1.0);
    }
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    // Durations round in the unit they are read in (10 d, not 1e6 s).
    let scale = match unit {
        Unit::Seconds if hi >= 172_800.0 => 86_400.0,
        Unit::Seconds if hi >= 7_200.0 => 3_600.0,
        Unit::Seconds => 60.0,
        _ => 1.0,
    };
    if lo < 0.0 {
        (-nice(-lo / scale) * scale, nice(hi / scale) * scale)
    } else {
        (0.0, (nice(hi / scale) * scale).max(scale))
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `v` (0 for 0 and below).
fn nice(v: f64) -> f64 {
    if v <= 0.0 {
        return 0.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * mag >= v {
            return m * mag;
        }
    }
    10.0 * mag
}

/// Map (time, value) to SVG coordinates for the given ranges; a single
/// time is drawn in the middle.
pub fn point(t: i64, v: f64, (t0, t1): (i64, i64), (y0, y1): (f64, f64)) -> (f64, f64) {
    let w = WIDTH - LEFT - RIGHT;
    let h = HEIGHT - TOP - BOTTOM;
    let x = if t1 > t0 {
        LEFT + (t - t0) as f64 / (t1 - t0) as f64 * w
    } else {
        LEFT + w / 2.0
    };
    let y = if y1 > y0 {
        TOP + h - (v - y0) / (y1 - y0) * h
    } else {
        TOP + h
    };
    (x, y)
}

/// Runs of consecutive values present: each is drawn as one polyline (a
/// run of one as a dot), so a missing value leaves a gap.
pub fn runs(values: &[Option<f64>]) -> Vec<Vec<(usize, f64)>> {
    let mut out: Vec<Vec<(usize, f64)>> = Vec::new();
    let mut cur = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v {
            Some(v) if v.is_finite() => cur.push((i, *v)),
            _ => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn date(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(time::macros::format_description!("[year]-[month]-[day]"))
                .ok()
        })
        .unwrap_or_default()
}

/// The chart as an `<svg>` element: a title and a description for
/// assistive technology, gridlines with their values, the first and last
/// dates, and one polyline per run of values. `data-points` counts the
/// values drawn (0: the chart says "no data").
pub fn render(c: &Chart) -> String {
    let id = html_escape(&c.id);
    let title = html_escape(&c.title);
    let t_range = (
        c.times.first().copied().unwrap_or(0),
        c.times.last().copied().unwrap_or(0),
    );
    let y = y_range(
        c.unit,
        c.lines
            .iter()
            .flat_map(|l| l.values.iter().flatten().copied()),
    );
    let drawn: usize = c
        .lines
        .iter()
        .map(|l| {
            l.values
                .iter()
                .filter(|v| v.is_some_and(f64::is_finite))
                .count()
        })
        .sum();
    let mut desc = Vec::new();
    for l in &c.lines {
        let last = l.values.iter().rev().flatten().next();
        desc.push(format!(
            "{}: {}",
            l.name,
            last.map_or("no data".to_string(), |v| c.unit.format(*v))
        ));
    }
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\" data-points=\"{drawn}\">\
<title id=\"{id}-t\">{title}</title><desc id=\"{id}-d\">Latest: {}</desc>",
        html_escape(&desc.join("; "))
    );
    // Gridlines at 0, the top, the bottom and the middle of the range,
    // each left out when it would sit within 12 units of one drawn.
    let mut drawn_at: Vec<f64> = Vec::new();
    for g in [0.0, y.1, y.0, (y.0 + y.1) / 2.0] {
        let (_, gy) = point(t_range.0, g, t_range, y);
        if drawn_at.iter().any(|d| (d - gy).abs() < 12.0) {
            continue;
        }
        drawn_at.push(gy);
        let _ = write!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{gy:.1}\" x2=\"{:.1}\" y2=\"{gy:.1}\" stroke=\"#ccc\" stroke-width=\"1\"/>\
<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            gy + 4.0,
            html_escape(&c.unit.format(g))
        );
    }
    if !c.times.is_empty() {
        let base = HEIGHT - 6.0;
        let _ = write!(
            s,
            "<text x=\"{LEFT}\" y=\"{base}\" font-size=\"11\" fill=\"#444\">{}</text>\
<text x=\"{:.1}\" y=\"{base}\" font-size=\"11\" text-anchor=\"end\" fill=\"#444\">{}</text>",
            date(t_range.0),
            WIDTH - RIGHT,
            date(t_range.1)
        );
    }
    for l in &c.lines {
        let dash = l
            .dash
            .map(|d| format!(" stroke-dasharray=\"{d}\""))
            .unwrap_or_default();
        for run in runs(&l.values) {
            let pts: Vec<(f64, f64)> = run
                .iter()
                .filter_map(|(i, v)| Some(point(*c.times.get(*i)?, *v, t_range, y)))
                .collect();
            if let [(x, py)] = pts.as_slice() {
                let _ = write!(
                    s,
                    "<circle cx=\"{x:.1}\" cy=\"{py:.1}\" r=\"2.5\" fill=\"{}\"/>",
                    l.color
                );
            } else if !pts.is_empty() {
                let p: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                let _ = write!(
                    s,
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash} points=\"{}\"/>",
                    l.color,
                    p.join(" ")
                );
            }
        }
    }
    if drawn == 0 {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"middle\" fill=\"#666\">no data in this period</text>",
            (LEFT + WIDTH - RIGHT) / 2.0,
            (TOP + HEIGHT - BOTTOM) / 2.0
        );
    }
    s.push_str("</svg>");
    s
}
