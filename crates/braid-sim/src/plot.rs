//! SVG plots of a run (`braid sim --plot FILE.svg`): what each subflow and the application
//! got over time, from the samples of [`crate::scenario::SimConfig::trace_every`].
//!
//! Two panels share the time axis: throughput (each of the client's subflows, from the bytes
//! its peer acknowledged per interval, and the bytes the server application read, in
//! Mbit/s) and each subflow's congestion window (KiB). The SVG is self-contained, plain
//! text, and deterministic for a given run.

use std::fmt::Write as _;

use crate::scenario::{SimResult, TraceSample};

/// Width and height of the picture, pixels.
const WIDTH: f64 = 960.0;
const PANEL_HEIGHT: f64 = 260.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 150.0;
const MARGIN_TOP: f64 = 40.0;
const GAP: f64 = 60.0;
/// At most this many points per line: samples are merged into bins beyond it.
const MAX_POINTS: usize = 600;
/// One colour per subflow (cycled), and the application's.
const COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];
const APP_COLOUR: &str = "#444444";

/// A line of a panel: its name, colour, dashed or not, and (seconds, value) points.
struct Line {
    name: String,
    colour: &'static str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// The samples merged into at most [`MAX_POINTS`] bins: each bin keeps its last sample.
fn binned(trace: &[TraceSample]) -> Vec<&TraceSample> {
    let step = trace.len().div_ceil(MAX_POINTS).max(1);
    let mut out: Vec<&TraceSample> = trace.iter().skip(step - 1).step_by(step).collect();
    if let Some(last) = trace.last() {
        if out.last().is_none_or(|l| l.at != last.at) {
            out.push(last);
        }
    }
    out
}

/// Mbit/s between two counts of bytes `dt` seconds apart.
fn mbps(bytes: u64, dt: f64) -> f64 {
    if dt <= 0.0 {
        0.0
    } else {
        bytes as f64 * 8.0 / dt / 1e6
    }
}

/// The rate of a cumulative byte count over the `window` seconds before each point of
/// `points` ((seconds, bytes), time-ordered), at most [`MAX_POINTS`] points: transfers
/// come in bursts (a cumulative ACK after a loss, in-order data after a hole), and the
/// window keeps the lines readable.
fn windowed(points: &[(f64, u64)], window: f64) -> Vec<(f64, f64)> {
    let step = points.len().div_ceil(MAX_POINTS).max(1);
    let mut out = Vec::new();
    let mut lo = 0;
    for (i, &(t, b)) in points.iter().enumerate() {
        while lo < i && points[lo].0 < t - window {
            lo += 1;
        }
        if i % step != step - 1 && i + 1 != points.len() {
            continue;
        }
        let (t0, b0) = points[lo];
        if t > t0 {
            out.push((t, mbps(b.saturating_sub(b0), t - t0)));
        }
    }
    out
}

fn lines(trace: &[TraceSample]) -> (Vec<Line>, Vec<Line>) {
    let t_max = trace.last().map_or(0.0, |t| t.at.as_secs_f64());
    let window = (t_max / 100.0).max(0.1);
    let mut ids: Vec<usize> = trace
        .iter()
        .flat_map(|t| t.subflows.iter().map(|s| s.id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let samples = binned(trace);
    let mut rate: Vec<Line> = Vec::new();
    let mut cwnd: Vec<Line> = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        let name = format!("subflow {id}");
        let acked: Vec<(f64, u64)> = trace
            .iter()
            .filter_map(|t| {
                let s = t.subflows.iter().find(|s| s.id == *id)?;
                Some((t.at.as_secs_f64(), s.bytes_acked))
            })
            .collect();
        let c = samples
            .iter()
            .filter_map(|t| {
                let s = t.subflows.iter().find(|s| s.id == *id)?;
                Some((t.at.as_secs_f64(), s.cwnd as f64 / 1024.0))
            })
            .collect();
        rate.push(Line {
            name: name.clone(),
            colour,
            dashed: false,
            points: windowed(&acked, window),
        });
        cwnd.push(Line {
            name,
            colour,
            dashed: false,
            points: c,
        });
    }
    let delivered: Vec<(f64, u64)> = trace
        .iter()
        .map(|t| (t.at.as_secs_f64(), t.delivered))
        .collect();
    rate.push(Line {
        name: "application".into(),
        colour: APP_COLOUR,
        dashed: true,
        points: windowed(&delivered, window),
    });
    (rate, cwnd)
}

/// A "nice" step for about `n` ticks up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = max / n;
    if raw.is_nan() || raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw {
            return m * p;
        }
    }
    10.0 * p
}

/// A "nice" axis maximum at or above `v` (1, 2 or 5 times a power of ten).
fn nice_max(v: f64) -> f64 {
    nice_step(v, 1.0)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One panel at vertical offset `top`: axes, grid, ticks, the lines and their legend.
fn panel(svg: &mut String, top: f64, title: &str, unit: &str, t_max: f64, lines: &[Line]) {
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let y_max = nice_max(
        lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let x = |t: f64| MARGIN_LEFT + t / t_max * plot_w;
    let y = |v: f64| top + PANEL_HEIGHT - (v / y_max).min(1.0) * PANEL_HEIGHT;
    let _ = writeln!(
        svg,
        r#"<text x="{MARGIN_LEFT}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
        top - 10.0,
        esc(title)
    );
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let yy = y(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{MARGIN_LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            MARGIN_LEFT + plot_w,
            MARGIN_LEFT - 6.0,
            yy + 4.0,
            trim_number(v)
        );
    }
    let step = nice_step(t_max, 10.0);
    let ticks = (t_max / step).floor() as u32;
    for i in 0..=ticks {
        let t = step * f64::from(i);
        let xx = x(t);
        let _ = writeln!(
            svg,
            r##"<line x1="{xx:.1}" y1="{top:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#eeeeee"/><text x="{xx:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            top + PANEL_HEIGHT,
            top + PANEL_HEIGHT + 16.0,
            trim_number(t)
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{MARGIN_LEFT}" y="{top:.1}" width="{plot_w:.1}" height="{PANEL_HEIGHT}" fill="none" stroke="#888888"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{:.1}" font-size="12" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        top + PANEL_HEIGHT / 2.0,
        top + PANEL_HEIGHT / 2.0,
        esc(unit)
    );
    for (n, l) in lines.iter().enumerate() {
        if l.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = l
            .points
            .iter()
            .map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v)))
            .collect();
        let dash = if l.dashed {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5"{dash} points="{}"/>"#,
            l.colour,
            pts.join(" ")
        );
        let ly = top + 14.0 + 18.0 * n as f64;
        let lx = MARGIN_LEFT + plot_w + 12.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/><text x="{:.1}" y="{ly:.1}" font-size="12">{}</text>"#,
            ly - 4.0,
            lx + 20.0,
            ly - 4.0,
            l.colour,
            lx + 26.0,
            esc(&l.name)
        );
    }
}

/// `v` with at most two decimals and no trailing zeros.
fn trim_number(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// The SVG of a run that recorded a trace; `title` heads it (scenario and settings).
pub fn svg(result: &SimResult, title: &str) -> String {
    let (rate, cwnd) = lines(&result.trace);
    let t_max = result
        .trace
        .last()
        .map_or(1.0, |t| t.at.as_secs_f64())
        .max(1e-3);
    let height = MARGIN_TOP + 20.0 + 2.0 * PANEL_HEIGHT + GAP + 50.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{MARGIN_LEFT}" y="20" font-size="15">{}</text>"#,
        esc(title)
    );
    panel(
        &mut svg,
        MARGIN_TOP + 20.0,
        "throughput",
        "Mbit/s",
        t_max,
        &rate,
    );
    let top2 = MARGIN_TOP + 20.0 + PANEL_HEIGHT + GAP;
    panel(&mut svg, top2, "congestion window", "KiB", t_max, &cwnd);
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">time (s, simulated)</text>"#,
        MARGIN_LEFT + (WIDTH - MARGIN_LEFT - MARGIN_RIGHT) / 2.0,
        top2 + PANEL_HEIGHT + 36.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_rates_smooth_bursts() {
        // 5 MB arriving by 0.5 s and 5 MB more by 1.5 s: over the last second 5 MB, 40 Mbit/s
        // at the end, not the burst's instantaneous rate.
        let pts = [
            (0.0, 0),
            (0.5, 5_000_000),
            (1.0, 5_000_000),
            (1.5, 10_000_000),
        ];
        let w = windowed(&pts, 1.0);
        assert_eq!(w.last().map(|p| p.1.round()), Some(40.0));
        assert_eq!(nice_step(4.1, 10.0), 0.5);
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(87.0), 100.0);
        assert_eq!(nice_max(101.0), 200.0);
        assert_eq!(nice_max(0.3), 0.5);
        assert_eq!(trim_number(2.50), "2.5");
        assert_eq!(trim_number(100.0), "100");
    }
}
