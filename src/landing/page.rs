//! The landing page's HTML: headline KPIs, their trends, source health,
//! dashboards and docs. Pure: everything it shows is passed in, every
//! string from config or store is escaped.

use super::svg::{self, Chart, Line, Unit};
use super::{html_escape, Trends, DASHBOARDS};
use crate::app::SourceStatus;
use crate::health::{REVISION, VERSION};
use crate::kpi::Snapshot;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Where the docs are read: the repository (the binary serves no Markdown).
pub const DOCS_BASE: &str = "https://github.com/nhi-exporter/nhi-exporter/blob/main/docs/";

/// The page's Content-Security-Policy: no script, no external load of any
/// kind; inline styles and SVG only.
pub const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Line colours and dash patterns, one per configured window.
const COLORS: [&str; 5] = ["#1d4ed8", "#c2410c", "#15803d", "#7e22ce", "#a16207"];
const DASHES: [Option<&str>; 5] = [None, Some("6 3"), Some("2 3"), Some("8 3 2 3"), Some("1 2")];
/// Activity (closure) drawn dashed grey, outcome (exposure reduction) solid red.
const ACTIVITY: (&str, Option<&str>) = ("#6b7280", Some("6 3"));
const OUTCOME: (&str, Option<&str>) = ("#b91c1c", None);

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#111;max-width:1100px}\
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:.8em;margin:0}\
.kpi{border:1px solid #ccc;border-radius:6px;padding:.6em .8em;margin:0}\
.kpi dt{font-weight:600}.kpi dd{margin:0}.kpi .v{font-size:1.6em;font-weight:700}\
.kpi .d{color:#444;font-size:.9em}.charts{display:flex;flex-wrap:wrap;gap:1.2em}\
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:.5em;width:480px}\
figcaption{font-weight:600;margin-bottom:.3em}.vals{font-size:.9em;color:#333;margin:.3em 0 0}\
.sw{display:inline-block;width:1.6em;height:0;border-top:3px solid;vertical-align:middle;margin-right:.3em}\
table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}\
.note{color:#444}";

/// What the page shows.
pub struct Input<'a> {
    pub telemetry_path: &'a str,
    pub snapshot: &'a Snapshot,
    pub statuses: &'a BTreeMap<String, SourceStatus>,
    /// None: the history could not be read.
    pub trends: Option<&'a Trends>,
}

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn opt(unit: Unit, v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| unit.format(v))
}

fn signed(v: f64) -> String {
    if v > 0.0 {
        format!("+{}", Unit::Count.format(v))
    } else {
        Unit::Count.format(v)
    }
}

/// One headline KPI card.
fn card(s: &mut String, id: &str, name: &str, value: &str, detail: &str) {
    let _ = writeln!(
        s,
        "<div class=\"kpi\" data-kpi=\"{id}\"><dt>{}</dt><dd class=\"v\">{}</dd><dd class=\"d\">{detail}</dd></div>",
        html_escape(name),
        html_escape(value)
    );
}

/// Per-window values as "label value" pairs, escaped.
fn per_window(snap: &Snapshot, f: impl Fn(&crate::kpi::WindowKpis) -> String) -> String {
    snap.windows
        .iter()
        .map(|w| {
            format!(
                "<span class=\"w\">{}: <b>{}</b></span>",
                html_escape(&w.label),
                html_escape(&f(w))
            )
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

fn cards(s: &mut String, snap: &Snapshot) {
    s.push_str("<dl class=\"kpis\">\n");
    let validity: Vec<String> = snap
        .exposed_secrets
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(v, n)| format!("{} {n}", html_escape(v)))
        .collect();
    card(
        s,
        "exposed_secrets",
        "Exposed secrets",
        &snap.exposed_total().to_string(),
        &format!(
            "distinct open exposures across all scanners{}",
            if validity.is_empty() {
                String::new()
            } else {
                format!(" ({})", validity.join(", "))
            }
        ),
    );
    card(
        s,
        "secrets_in_code_delta",
        "Secrets-in-code delta",
        &snap
            .windows
            .iter()
            .map(|w| signed(w.secrets_in_code_delta))
            .collect::<Vec<_>>()
            .join(" / "),
        &format!(
            "{}<br>open exposures now minus at the window's start; negative is better",
            per_window(snap, |w| signed(w.secrets_in_code_delta))
        ),
    );
    card(
        s,
        "closure_ratio",
        "Closure ratio (activity)",
        &snap
            .windows
            .last()
            .map_or("—".into(), |w| opt(Unit::Ratio, w.closure_ratio)),
        &format!(
            "{}<br>findings closed ÷ (open at the start + detected)",
            per_window(snap, |w| opt(Unit::Ratio, w.closure_ratio))
        ),
    );
    card(
        s,
        "exposure_reduction_ratio",
        "Exposure reduction ratio (outcome)",
        &snap.windows.last().map_or("—".into(), |w| {
            opt(Unit::Ratio, w.exposure_reduction_ratio)
        }),
        &format!(
            "{}<br>exposures confirmed revoked ÷ (open at the start + opened)",
            per_window(snap, |w| opt(Unit::Ratio, w.exposure_reduction_ratio))
        ),
    );
    card(
        s,
        "time_to_revoke_median",
        "Time to revoke (median)",
        &snap.windows.last().map_or("—".into(), |w| {
            opt(Unit::Seconds, w.time_to_revoke_median)
        }),
        &format!(
            "{}<br>first detection → confirmed revocation",
            per_window(snap, |w| opt(Unit::Seconds, w.time_to_revoke_median))
        ),
    );
    card(
        s,
        "residual_exposures",
        "Residual exposures",
        &snap.residual_exposures.to_string(),
        "findings all closed, secret still works: closed, still exposed",
    );
    let dims: Vec<String> = snap
        .posture
        .iter()
        .filter(|(d, _)| d.as_str() != "overall")
        .map(|(d, v)| format!("{} {}", html_escape(d), Unit::Score.format(*v)))
        .collect();
    card(
        s,
        "posture_score",
        "Posture score",
        &opt(Unit::Score, snap.posture.get("overall").copied()),
        &format!("0..1, mean of: {}", dims.join(" · ")),
    );
    let ids = &snap.inventory.identities;
    let (standing, unused) = if ids.is_empty() {
        ("—".to_string(), "—".to_string())
    } else {
        (
            ids.values()
                .map(|c| c.standing_privileged)
                .sum::<u64>()
                .to_string(),
            ids.values().map(|c| c.unused).sum::<u64>().to_string(),
        )
    };
    let none = if ids.is_empty() {
        " (no inventory source has reported)"
    } else {
        ""
    };
    card(
        s,
        "standing_privileged_identities",
        "Standing privileged identities",
        &standing,
        &format!("NHIs holding admin-equivalent rights permanently, as of the latest poll{none}"),
    );
    card(
        s,
        "unused_identities",
        "Unused identities",
        &unused,
        &format!("NHIs not used within policy.unused_after, as of the latest poll{none}"),
    );
    s.push_str("</dl>\n");
}

/// A chart in a figure, with the first and last value of each line in text.
fn figure(s: &mut String, c: &Chart) {
    let _ = write!(
        s,
        "<figure><figcaption>{}</figcaption>",
        html_escape(&c.title)
    );
    s.push_str(&svg::render(c));
    s.push_str("<p class=\"vals\">");
    let lines: Vec<String> = c
        .lines
        .iter()
        .map(|l| {
            let first = l.values.iter().flatten().next().copied();
            let last = l.values.iter().rev().flatten().next().copied();
            format!(
                "<span class=\"sw\" style=\"border-color:{}{}\"></span>{}: {} → <b>{}</b>",
                l.color,
                if l.dash.is_some() {
                    ";border-top-style:dashed"
                } else {
                    ""
                },
                html_escape(&l.name),
                html_escape(&opt(c.unit, first)),
                html_escape(&opt(c.unit, last))
            )
        })
        .collect();
    s.push_str(&lines.join("<br>"));
    s.push_str("</p>");
    // Every value, for screen readers and for copying.
    s.push_str("<details><summary>Data table</summary><table><tr><th>time (UTC)</th>");
    for l in &c.lines {
        let _ = write!(s, "<th>{}</th>", html_escape(&l.name));
    }
    s.push_str("</tr>");
    for (i, t) in c.times.iter().enumerate() {
        let _ = write!(s, "<tr><td>{}</td>", rfc3339(*t));
        for l in &c.lines {
            let v = l.values.get(i).copied().flatten();
            let _ = write!(s, "<td>{}</td>", html_escape(&opt(c.unit, v)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></details></figure>\n");
}

/// The charts of the trends section, in page order.
pub fn charts(t: &Trends) -> Vec<Chart> {
    let times: Vec<i64> = t.points.iter().map(|p| p.at).collect();
    let labels: Vec<String> = t
        .points
        .first()
        .map(|p| p.windows.iter().map(|w| w.label.clone()).collect())
        .unwrap_or_default();
    let per_window = |f: &dyn Fn(&crate::kpi::WindowKpis) -> Option<f64>| -> Vec<Line> {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| Line {
                name: l.clone(),
                values: t
                    .points
                    .iter()
                    .map(|p| p.windows.get(i).and_then(f))
                    .collect(),
                color: COLORS[i % COLORS.len()],
                dash: DASHES[i % DASHES.len()],
            })
            .collect()
    };
    let chart = |id: &str, title: String, unit: Unit, lines: Vec<Line>| Chart {
        id: id.into(),
        title,
        unit,
        times: times.clone(),
        lines,
    };
    let mut out = vec![chart(
        "c-exposed",
        "Exposed secrets (open exposures)".into(),
        Unit::Count,
        vec![Line {
            name: "open exposures".into(),
            values: t.points.iter().map(|p| Some(p.exposed_secrets)).collect(),
            color: COLORS[0],
            dash: None,
        }],
    )];
    out.push(chart(
        "c-delta",
        "Secrets-in-code delta, per window".into(),
        Unit::Count,
        per_window(&|w| Some(w.secrets_in_code_delta)),
    ));
    for (i, l) in labels.iter().enumerate() {
        let ratio = |f: &dyn Fn(&crate::kpi::WindowKpis) -> Option<f64>| -> Vec<Option<f64>> {
            t.points
                .iter()
                .map(|p| p.windows.get(i).and_then(f))
                .collect()
        };
        out.push(chart(
            &format!("c-ratio-{i}"),
            format!("Closure ratio (activity) vs exposure reduction ratio (outcome), {l} window"),
            Unit::Ratio,
            vec![
                Line {
                    name: "closure ratio".into(),
                    values: ratio(&|w| w.closure_ratio),
                    color: ACTIVITY.0,
                    dash: ACTIVITY.1,
                },
                Line {
                    name: "exposure reduction ratio".into(),
                    values: ratio(&|w| w.exposure_reduction_ratio),
                    color: OUTCOME.0,
                    dash: OUTCOME.1,
                },
            ],
        ));
    }
    out.push(chart(
        "c-ttr",
        "Time to revoke (median), per window".into(),
        Unit::Seconds,
        per_window(&|w| w.time_to_revoke_median),
    ));
    out.push(chart(
        "c-residual",
        "Residual exposures (closed, still exposed)".into(),
        Unit::Count,
        vec![Line {
            name: "residual exposures".into(),
            values: t.residual.clone(),
            color: COLORS[1],
            dash: None,
        }],
    ));
    out.push(chart(
        "c-posture",
        "Posture score (overall)".into(),
        Unit::Score,
        vec![Line {
            name: "overall".into(),
            values: t.posture.clone(),
            color: COLORS[2],
            dash: None,
        }],
    ));
    out
}

fn trends_section(s: &mut String, trends: Option<&Trends>) {
    let Some(t) = trends else {
        s.push_str("<p class=\"note\">History unavailable: the store could not be read (see the log).</p>\n");
        return;
    };
    let (Some(first), Some(last)) = (t.points.first(), t.points.last()) else {
        s.push_str("<p class=\"note\">No history yet: the trends appear after the first successful poll.</p>\n");
        return;
    };
    let _ = writeln!(
        s,
        "<p class=\"note\">{} points from {} to {} (UTC){}. Ratios with nothing to divide by are left as gaps. \
Residual exposures and the posture score are drawn from the exporter's own polls only.</p>\n<div class=\"charts\">",
        t.points.len(),
        rfc3339(first.at),
        rfc3339(last.at),
        if t.points.len() < t.sampled {
            format!(
                "; {} more were not computed: the store is large, the page's cost is bounded",
                t.sampled - t.points.len()
            )
        } else {
            String::new()
        }
    );
    for c in charts(t) {
        figure(s, &c);
    }
    s.push_str("</div>\n");
}

fn sources_table(s: &mut String, statuses: &BTreeMap<String, SourceStatus>) {
    s.push_str("<table>\n<tr><th>Source</th><th>Type</th><th>Status</th><th>Last success</th><th>Errors of the last poll</th></tr>\n");
    for (name, st) in statuses {
        let health = if !st.polled {
            "pending"
        } else if st.up {
            "up"
        } else {
            "down"
        };
        let last = st.last_success.map_or_else(|| "never".into(), rfc3339);
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html_escape(name),
            html_escape(&st.source_type),
            health,
            html_escape(&last),
            st.last_errors
                .iter()
                .map(|e| html_escape(e))
                .collect::<Vec<_>>()
                .join("<br>\n"),
        );
    }
    s.push_str("</table>\n");
}

/// The whole page.
pub fn render(i: &Input) -> String {
    let tp = html_escape(i.telemetry_path);
    let snap = i.snapshot;
    let mut s = String::with_capacity(64 * 1024);
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>nhi-exporter</title><style>{STYLE}</style></head><body>\n\
<h1>nhi-exporter</h1>\n<p>Outcome KPIs of non-human identity security. Version {VERSION} (revision {REVISION}).</p>\n\
<p><a href=\"{tp}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a> · <a href=\"#dashboards\">Dashboards and docs</a></p>"
    );
    if snap.computed_at > 0 {
        let _ = writeln!(
            s,
            "<p class=\"note\">As of the latest poll, {} (UTC){}.</p>",
            rfc3339(snap.computed_at),
            snap.history_start
                .map(|h| format!("; history since {}", rfc3339(h)))
                .unwrap_or_default()
        );
    }
    s.push_str("<h2>Headline KPIs</h2>\n");
    cards(&mut s, snap);
    s.push_str("<h2>Trends</h2>\n");
    trends_section(&mut s, i.trends);
    s.push_str("<h2>Sources</h2>\n");
    sources_table(&mut s, i.statuses);
    s.push_str("<h2 id=\"dashboards\">Dashboards and docs</h2>\n<p>Grafana dashboards bundled with this build (import the JSON):</p>\n<ul>\n");
    for (name, title, _) in DASHBOARDS {
        let _ = writeln!(
            s,
            "<li><a href=\"/dashboards/{name}.json\">{}</a> ({name}.json)</li>",
            html_escape(title)
        );
    }
    s.push_str("</ul>\n<p>Documentation (in the repository):</p>\n<ul>\n");
    for (file, what) in [
        (
            "METRICS.md",
            "every metric, the posture formulas, OWASP NHI and NIST CSF mapping",
        ),
        (
            "CONFIGURATION.md",
            "every option, the CLI, the HTTP endpoints, the web config",
        ),
        (
            "runbooks.md",
            "what each bundled alert means and how to act on it",
        ),
        ("DEPLOYMENT.md", "deployment: container, Helm, systemd"),
    ] {
        let _ = writeln!(
            s,
            "<li><a href=\"{DOCS_BASE}{file}\">{file}</a>: {what}</li>"
        );
    }
    s.push_str("</ul>\n</body></html>\n");
    s
}
