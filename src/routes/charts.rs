//! Column charts drawn on the server as SVG: no JavaScript, and no inline styles (the CSP forbids
//! them; colours come from classes in the stylesheet). The geometry is computed here and the
//! template (`templates/chart.html`) writes it out, escaped like everything else. Each chart has a
//! `<title>` and `<desc>`, a tooltip on every bar, and the numbers behind it as a table.

/// One series of values, one per category, drawn in `class`'s colour.
pub struct Series {
    pub name: &'static str,
    pub class: &'static str,
    pub values: Vec<i64>,
}

pub struct Bar {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
    pub class: &'static str,
    pub tip: String,
}

/// A horizontal grid line at `y`, labelled with its value.
pub struct Tick {
    pub y: f32,
    pub label: String,
}

/// A category's label under the axis, centred on `x`.
pub struct Label {
    pub x: f32,
    pub text: String,
}

pub struct Legend {
    pub x: f32,
    pub class: &'static str,
    pub name: &'static str,
}

pub struct Chart {
    /// Unique on the page: the ids of the title and description derive from it.
    pub id: &'static str,
    pub title: String,
    pub desc: String,
    pub bars: Vec<Bar>,
    pub ticks: Vec<Tick>,
    pub labels: Vec<Label>,
    pub legend: Vec<Legend>,
    /// The data table: the category column's heading, then one column per series.
    pub head: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// The drawing's coordinate system (`viewBox`, in the template); the SVG scales to the width of its
/// card. Text is 14 units high on wide screens and 22 on narrow ones (the stylesheet), about 12 px
/// at 360 px; the left margin leaves room for four-digit grid labels at that size.
pub const WIDTH: f32 = 480.0;
pub const HEIGHT: f32 = 230.0;
/// Where the plot starts; grid labels end just left of it.
pub const LEFT: f32 = 54.0;
pub const RIGHT: f32 = WIDTH - 8.0;
const TOP: f32 = 34.0;
const BOTTOM: f32 = HEIGHT - 26.0;

fn round1(v: f32) -> f32 {
    (v * 10.0).round() / 10.0
}

/// The step between grid lines: 1, 2 or 5 times a power of ten, so that at most 4 steps reach `max`.
fn step_for(max: i64) -> i64 {
    let mut magnitude = 1;
    loop {
        for m in [1, 2, 5] {
            if max <= 4 * m * magnitude {
                return m * magnitude;
            }
        }
        magnitude *= 10;
    }
}

/// A column chart of `series` over `categories` (`category_tips[i]` is how a tooltip and the table
/// name category `i`; every `label_every`-th category is labelled under the axis).
pub fn columns(
    id: &'static str,
    title: String,
    desc: String,
    categories: &[(String, String)],
    label_every: usize,
    series: &[Series],
) -> Chart {
    let max = series.iter().flat_map(|s| s.values.iter().copied()).max().unwrap_or(0).max(1);
    let step = step_for(max);
    let top = (max + step - 1) / step * step;
    let scale = (BOTTOM - TOP) / top as f32;
    let ticks = (0..=top / step)
        .map(|i| Tick { y: round1(BOTTOM - (i * step) as f32 * scale), label: (i * step).to_string() })
        .collect();
    let slot = (RIGHT - LEFT) / categories.len().max(1) as f32;
    let group = slot * if series.len() > 1 { 0.84 } else { 0.6 };
    let bar_w = group / series.len().max(1) as f32;
    let mut bars = Vec::new();
    for (i, (_, tip_name)) in categories.iter().enumerate() {
        let x0 = LEFT + i as f32 * slot + (slot - group) / 2.0;
        for (k, s) in series.iter().enumerate() {
            let v = s.values.get(i).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let h = v as f32 * scale;
            bars.push(Bar {
                x: round1(x0 + k as f32 * bar_w),
                y: round1(BOTTOM - h),
                w: round1(bar_w),
                h: round1(h),
                class: s.class,
                tip: format!("{tip_name}: {v} {}", s.name.to_lowercase()),
            });
        }
    }
    let labels = categories
        .iter()
        .enumerate()
        .filter(|(i, _)| i % label_every.max(1) == 0)
        .map(|(i, (label, _))| Label { x: round1(LEFT + (i as f32 + 0.5) * slot), text: label.clone() })
        .collect();
    let legend = series
        .iter()
        .enumerate()
        .map(|(k, s)| Legend { x: LEFT + k as f32 * 190.0, class: s.class, name: s.name })
        .collect();
    let mut head = vec![String::new()];
    head.extend(series.iter().map(|s| s.name.to_owned()));
    let rows = categories
        .iter()
        .enumerate()
        .map(|(i, (_, name))| {
            let mut row = vec![name.clone()];
            row.extend(series.iter().map(|s| s.values.get(i).copied().unwrap_or(0).to_string()));
            row
        })
        .collect();
    Chart { id, title, desc, bars, ticks, labels, legend, head, rows }
}

impl Chart {
    /// Names the data table's first column.
    pub fn with_category_heading(mut self, heading: &str) -> Self {
        if let Some(first) = self.head.first_mut() {
            *first = heading.to_owned();
        }
        self
    }

    /// The plot's left and right edges, for the grid lines.
    pub fn plot_edges(&self) -> (f32, f32) {
        (LEFT, RIGHT)
    }

    pub fn title_id(&self) -> String {
        format!("{}-title", self.id)
    }

    pub fn desc_id(&self) -> String {
        format!("{}-desc", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_steps_are_round_and_reach_the_maximum() {
        for (max, step) in [(1, 1), (4, 1), (5, 2), (9, 5), (20, 5), (21, 10), (399, 100), (1_000_000, 500_000)] {
            assert_eq!(step_for(max), step, "{max}");
            assert!(max <= 4 * step_for(max));
        }
    }

    #[test]
    fn the_tallest_bar_fits_and_bars_are_proportional() {
        let cats: Vec<(String, String)> = (0..3).map(|i| (i.to_string(), format!("hour {i}"))).collect();
        let s = [Series { name: "Sign-ins", class: "a", values: vec![0, 5, 10] }];
        let c = columns("c", "t".into(), "d".into(), &cats, 1, &s);
        assert_eq!(c.bars.len(), 2, "a zero draws no bar");
        assert!(c.bars.iter().all(|b| b.y >= TOP && b.y + b.h <= BOTTOM + 0.1 && b.x >= LEFT && b.x + b.w <= RIGHT));
        assert!((c.bars[1].h - 2.0 * c.bars[0].h).abs() < 0.2);
        assert_eq!(c.bars[1].tip, "hour 2: 10 sign-ins");
        assert_eq!(c.rows[2], vec!["hour 2".to_owned(), "10".to_owned()]);
        assert_eq!(c.ticks.last().map(|t| t.label.as_str()), Some("10"));
    }
}
