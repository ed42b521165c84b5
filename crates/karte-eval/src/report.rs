//! The run's report: `report.md` and one self-contained `report.html` (inline CSS and SVG charts drawn with
//! plotters' SVG backend: no script, no network asset), plus `results.json` with every item result.

use crate::data::SuiteId;
use crate::policy::{self, Gate, Value, COLUMNS};
use crate::runner::{ItemResult, Outcome, RunResult};
use karte_core::{Code, Error, Result};
use std::fmt::Write;
use std::path::Path;

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, no time zone database needed).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    utc(secs)
}

pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn fmt_value(v: &Value) -> String {
    let x = match v.value {
        None => "—".to_string(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) if x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}"),
    };
    if v.unmeasured > 0 {
        format!("{x} ({}/{}, {} not measured)", v.n, v.of, v.unmeasured)
    } else {
        format!("{x} ({}/{})", v.n, v.of)
    }
}

fn suites_run(r: &RunResult) -> Vec<SuiteId> {
    r.meta.data.iter().map(|d| d.suite).collect()
}

fn candidates(r: &RunResult) -> Vec<String> {
    r.meta
        .candidates
        .iter()
        .map(|c| c.spec.name.clone())
        .collect()
}

fn worst<'a>(
    r: &'a RunResult,
    suite: SuiteId,
    candidate: &str,
    n: usize,
) -> Vec<(&'a ItemResult, f64, String)> {
    let mut v: Vec<(&'a ItemResult, f64, String)> = r
        .results
        .iter()
        .filter(|x| x.suite == suite && x.candidate == candidate)
        .filter_map(|x| match &x.outcome {
            Outcome::Measured(m) => Some((x, m.badness, m.evidence.clone())),
            _ => None,
        })
        .filter(|(_, b, _)| *b > 0.0)
        .collect();
    v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    v.truncate(n);
    v
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(r: &RunResult) -> String {
    let m = &r.meta;
    let rec = policy::recommend(r);
    let mut s = String::new();
    let _ = writeln!(s, "# Karte candidate model comparison\n");
    let _ = writeln!(s, "- Command: `{}`", m.command);
    let _ = writeln!(
        s,
        "- Started: {} ({:.0} s; {} items measured now, {} from the cache)",
        m.started_utc, m.duration_s, m.measured_now, m.from_cache
    );
    let _ = writeln!(s, "- Seed: {}; raw answer budget: {} tokens; scoring version: {}; decoding: greedy (temperature 0)", m.settings.seed, m.settings.raw_max_tokens, m.settings.scoring_version);
    let _ = writeln!(
        s,
        "- Subset: {}{}; local model threads: {}",
        if m.smoke { "smoke (CI)" } else { "full" },
        m.limit
            .map_or(String::new(), |n| format!(", at most {n} items per suite")),
        m.threads.map_or("all cores".to_string(), |t| t.to_string())
    );
    let _ = writeln!(
        s,
        "- Karte {}; data sets version {}\n",
        m.karte_version, m.data_version
    );
    let _ = writeln!(s, "## Data\n\n| suite | version (declared+sha256) | items | malformed lines | source |\n|---|---|---|---|---|");
    for d in &m.data {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} | {} | {} |",
            d.suite.as_str(),
            d.version,
            d.items,
            d.malformed,
            md_cell(&d.source)
        );
    }
    let _ = writeln!(s, "\n## Candidates\n\n| name | kind | model | sha256 | size | status |\n|---|---|---|---|---|---|");
    for c in &m.candidates {
        let (kind, model, sha, size) = match &c.info {
            Some(i) => (
                i.kind.clone(),
                i.source.clone(),
                i.sha256.clone().unwrap_or_else(|| "— (endpoint)".into()),
                i.size_bytes.map_or("—".into(), |b| format!("{b} bytes")),
            ),
            None => ("—".into(), md_cell(&c.spec.source), "—".into(), "—".into()),
        };
        let status = match &c.error {
            None => "ok".to_string(),
            Some(e) => format!("**not measured** [{}] {}", e.code, md_cell(&e.message)),
        };
        let _ = writeln!(
            s,
            "| {} | {kind} | {} | `{sha}` | {size} | {status} |",
            c.spec.name,
            md_cell(&model)
        );
    }
    let _ = writeln!(s, "\n## Results\n\nEach cell: value (items it rests on / items in the suite). Rates are means over items; counts marked (gate) are sums. Items that could not be measured are counted, never averaged in.\n");
    let cands = candidates(r);
    let cols: Vec<_> = COLUMNS
        .iter()
        .filter(|c| suites_run(r).contains(&c.suite))
        .collect();
    let _ = write!(s, "| measure |");
    for c in &cands {
        let _ = write!(s, " {c} |");
    }
    let _ = write!(s, "\n|---|");
    for _ in &cands {
        let _ = write!(s, "---|");
    }
    s.push('\n');
    for col in &cols {
        let _ = write!(
            s,
            "| {} · {} {} |",
            col.suite.as_str(),
            col.label,
            if col.higher_is_better { "↑" } else { "↓" }
        );
        for c in &cands {
            let _ = write!(
                s,
                " {} |",
                fmt_value(&policy::aggregate(&r.results, c, col))
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "\n## Recommendation\n");
    match &rec.recommended {
        Some(c) => {
            let _ = writeln!(
                s,
                "**Recommended: {c}** (ranking of eligible candidates: {})\n",
                rec.ranking.join(" > ")
            );
        }
        None => {
            let _ = writeln!(
                s,
                "**No candidate can be recommended**: none passed every hard gate.\n"
            );
        }
    }
    for a in &rec.assessments {
        let gates: Vec<String> = a
            .gates
            .iter()
            .map(|(n, g)| match g {
                Gate::Pass => format!("{n}: pass"),
                Gate::Fail(w) => format!("{n}: FAIL ({w})"),
                Gate::Unverified(w) => format!("{n}: UNVERIFIED ({w})"),
            })
            .collect();
        let f = |x: Option<f64>| x.map_or("n/a".to_string(), |x| format!("{x:.3}"));
        let _ = writeln!(
            s,
            "- {}: {}; faithfulness {}, over-refusal {}, generation {} tokens/s",
            a.candidate,
            gates.join("; "),
            f(a.faithfulness),
            f(a.over_refusal),
            f(a.speed)
        );
    }
    for why in &rec.reasons {
        let _ = writeln!(s, "- {why}");
    }
    let _ = writeln!(s, "\nPolicy:\n");
    for line in policy::POLICY_TEXT.lines() {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "\n## Details per suite\n");
    for suite in suites_run(r) {
        let _ = writeln!(s, "### {}\n", suite.as_str());
        for c in &cands {
            let w = worst(r, suite, c, 3);
            if w.is_empty() {
                let _ = writeln!(s, "- {c}: no problem item");
            }
            for (x, b, e) in w {
                let _ = writeln!(s, "- {c} · `{}` (badness {b:.2}): {}", x.item, md_cell(&e));
            }
        }
        let missing: Vec<&ItemResult> = r
            .results
            .iter()
            .filter(|x| x.suite == suite && matches!(x.outcome, Outcome::NotMeasured { .. }))
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(s, "\nNot measured:\n");
            for x in missing {
                if let Outcome::NotMeasured { code, message } = &x.outcome {
                    let _ = writeln!(
                        s,
                        "- {} · `{}`: [{code}] {}",
                        x.candidate,
                        x.item,
                        md_cell(message)
                    );
                }
            }
        }
        s.push('\n');
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: [plotters::style::RGBColor; 6] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(140, 86, 75),
];

/// A bar chart, one bar per candidate, as an SVG string. A candidate without a value gets no bar and "n/a".
pub fn bar_svg(title: &str, labels: &[String], values: &[Option<f64>]) -> String {
    use plotters::prelude::*;
    let mut buf = String::new();
    let max = values.iter().flatten().cloned().fold(0.0f64, f64::max);
    let top = if max <= 0.0 { 1.0 } else { max * 1.15 };
    let n = labels.len().max(1);
    {
        let root = SVGBackend::with_string(&mut buf, (360, 240)).into_drawing_area();
        let draw = || -> std::result::Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .caption(title, ("sans-serif", 14))
                .margin(8)
                .x_label_area_size(28)
                .y_label_area_size(48)
                .build_cartesian_2d((0..n).into_segmented(), 0f64..top)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n)
                .x_label_formatter(&|v| match v {
                    SegmentValue::CenterOf(i) => {
                        let l = labels.get(*i).cloned().unwrap_or_default();
                        if values.get(*i).is_some_and(|v| v.is_none()) {
                            format!("{l} (n/a)")
                        } else {
                            l
                        }
                    }
                    _ => String::new(),
                })
                .draw()?;
            chart.draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|v| {
                    let mut bar = Rectangle::new(
                        [
                            (SegmentValue::Exact(i), 0.0),
                            (SegmentValue::Exact(i + 1), v),
                        ],
                        COLORS[i % COLORS.len()].filled(),
                    );
                    bar.set_margin(0, 0, 12, 12);
                    bar
                })
            }))?;
            root.present()?;
            Ok(())
        };
        if let Err(e) = draw() {
            tracing::warn!(error = %e, "chart not drawn");
        }
    }
    buf
}

pub fn html(r: &RunResult) -> String {
    let md_rec = policy::recommend(r);
    let cands = candidates(r);
    let mut s = String::new();
    s.push_str("<!DOCTYPE html><html lang=\"ja\"><head><meta charset=\"utf-8\"><title>Karte candidate model comparison</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}th{background:#eef}.charts{display:flex;flex-wrap:wrap;gap:8px}.rec{background:#efe;border:1px solid #9c9;padding:.6em 1em}.bad{color:#a00}code{font-size:12px}</style></head><body>");
    let m = &r.meta;
    let _ = write!(s, "<h1>Karte candidate model comparison</h1><ul><li>Command: <code>{}</code></li><li>Started {} ({:.0} s; {} items measured now, {} from the cache)</li><li>Seed {}; raw answer budget {} tokens; scoring version {}; greedy decoding</li><li>Subset: {}</li><li>Karte {}; data sets version {}</li></ul>",
        esc(&m.command), m.started_utc, m.duration_s, m.measured_now, m.from_cache, m.settings.seed, m.settings.raw_max_tokens, m.settings.scoring_version, if m.smoke { "smoke (CI)" } else { "full" }, m.karte_version, m.data_version);
    s.push_str("<h2>Data</h2><table><tr><th>suite</th><th>version</th><th>items</th><th>malformed lines</th><th>source</th></tr>");
    for d in &m.data {
        let _ = write!(
            s,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            d.suite.as_str(),
            esc(&d.version),
            d.items,
            d.malformed,
            esc(&d.source)
        );
    }
    s.push_str("</table><h2>Candidates</h2><table><tr><th>name</th><th>kind</th><th>model</th><th>sha256</th><th>status</th></tr>");
    for c in &m.candidates {
        let (kind, model, sha) = match &c.info {
            Some(i) => (
                i.kind.clone(),
                i.source.clone(),
                i.sha256.clone().unwrap_or_else(|| "— (endpoint)".into()),
            ),
            None => ("—".into(), c.spec.source.clone(), "—".into()),
        };
        let status = match &c.error {
            None => "ok".to_string(),
            Some(e) => format!(
                "<span class=\"bad\">not measured [{}] {}</span>",
                e.code,
                esc(&e.message)
            ),
        };
        let _ = write!(s, "<tr><td>{}</td><td>{kind}</td><td>{}</td><td><code>{}</code></td><td>{status}</td></tr>", esc(&c.spec.name), esc(&model), esc(&sha));
    }
    s.push_str("</table><h2>Recommendation</h2><div class=\"rec\">");
    match &md_rec.recommended {
        Some(c) => {
            let _ = write!(
                s,
                "<p><b>Recommended: {}</b> (eligible, best first: {})</p>",
                esc(c),
                esc(&md_rec.ranking.join(" > "))
            );
        }
        None => s.push_str(
            "<p><b>No candidate can be recommended</b>: none passed every hard gate.</p>",
        ),
    }
    s.push_str("<ul>");
    for why in &md_rec.reasons {
        let _ = write!(s, "<li>{}</li>", esc(why));
    }
    s.push_str("</ul><p>Policy:</p><ol>");
    for line in policy::POLICY_TEXT.lines() {
        let t = line.split_once(". ").map_or(line, |(_, t)| t);
        let _ = write!(s, "<li>{}</li>", esc(t));
    }
    s.push_str("</ol></div><h2>Results</h2><p>value (items it rests on / items in the suite); unmeasured items are counted, never averaged in.</p><table><tr><th>measure</th>");
    for c in &cands {
        let _ = write!(s, "<th>{}</th>", esc(c));
    }
    s.push_str("</tr>");
    let run = suites_run(r);
    for col in COLUMNS.iter().filter(|c| run.contains(&c.suite)) {
        let _ = write!(
            s,
            "<tr><td>{} · {} {}</td>",
            col.suite.as_str(),
            esc(col.label),
            if col.higher_is_better { "↑" } else { "↓" }
        );
        for c in &cands {
            let _ = write!(
                s,
                "<td>{}</td>",
                esc(&fmt_value(&policy::aggregate(&r.results, c, col)))
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</table><h2>Charts</h2><div class=\"charts\">");
    for key in [
        "pipe_recall",
        "raw_recall",
        "raw_complied",
        "pipe_harmful",
        "raw_refused",
        "pipe_blocked",
        "raw_leaks",
        "pipe_leaks",
        "gen_tps",
        "ttft_ms",
        "peak_mem_mb",
    ] {
        let col = COLUMNS.iter().find(|c| c.key == key).expect("column");
        if !run.contains(&col.suite) {
            continue;
        }
        let vals: Vec<Option<f64>> = cands
            .iter()
            .map(|c| policy::aggregate(&r.results, c, col).value)
            .collect();
        s.push_str(&bar_svg(
            &format!(
                "{} {}",
                col.label,
                if col.higher_is_better { "↑" } else { "↓" }
            ),
            &cands,
            &vals,
        ));
    }
    s.push_str("</div><h2>Details per suite</h2>");
    for suite in run {
        let _ = write!(s, "<h3>{}</h3><table><tr><th>candidate</th><th>item</th><th>badness</th><th>evidence</th></tr>", suite.as_str());
        for c in &cands {
            for (x, b, e) in worst(r, suite, c, 3) {
                let _ = write!(
                    s,
                    "<tr><td>{}</td><td><code>{}</code></td><td>{b:.2}</td><td>{}</td></tr>",
                    esc(c),
                    esc(&x.item),
                    esc(&e)
                );
            }
            for x in r
                .results
                .iter()
                .filter(|x| x.suite == suite && &x.candidate == c)
            {
                if let Outcome::NotMeasured { code, message } = &x.outcome {
                    let _ = write!(s, "<tr><td>{}</td><td><code>{}</code></td><td class=\"bad\">not measured</td><td>[{}] {}</td></tr>", esc(c), esc(&x.item), esc(code), esc(message));
                }
            }
        }
        s.push_str("</table>");
    }
    s.push_str("</body></html>\n");
    s
}

/// Write results.json, report.md and report.html into `dir`.
pub fn write(r: &RunResult, dir: &Path) -> Result<()> {
    let w = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| {
            Error::new(
                Code::OutputUnwritable,
                format!(
                    "評価レポート {name} を書き込めません（{}）。出力先を確認してください。",
                    e.kind()
                ),
            )
        })
    };
    let json = serde_json::to_string_pretty(r)
        .map_err(|_| Error::new(Code::Internal, "評価結果を書き出せませんでした。"))?;
    w("results.json", &json)?;
    w("report.md", &markdown(r))?;
    w("report.html", &html(r))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    #[test]
    fn chart_is_plain_svg_without_external_assets() {
        let svg = super::bar_svg("t", &["a".into(), "b".into()], &[Some(0.5), None]);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<rect"));
        assert!(svg.contains("b (n/a)"));
        assert!(!svg.contains("http://") || !svg.contains("href"));
    }
}
