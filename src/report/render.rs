//! Renderings of a report document: JSON, CSV rows, and one self-contained HTML file with
//! inline SVG charts and the JSON document embedded (so `verify-report` can check it).

use std::fmt::Write as _;

use serde_json::Value;

use super::request::ReportFormat;
use super::seal::EMBED_ID;
#[cfg(not(feature = "pdf"))]
use crate::error::Error;
use crate::error::Result;

/// Fails for a format this build cannot write (pdf without the `pdf` feature).
pub(crate) fn check_available(f: ReportFormat) -> Result<()> {
    match f {
        #[cfg(not(feature = "pdf"))]
        ReportFormat::Pdf => Err(Error::InvalidQuery {
            param: "format".into(),
            message: "pdf output is not available in this build (built without the `pdf` \
                      feature); ask for json, html or csv"
                .into(),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn render(doc: &Value, f: ReportFormat) -> Result<Vec<u8>> {
    check_available(f)?;
    Ok(match f {
        ReportFormat::Json => {
            let mut v = serde_json::to_vec_pretty(doc).expect("report serializes");
            v.push(b'\n');
            v
        }
        ReportFormat::Csv => csv(doc).into_bytes(),
        ReportFormat::Html => html(doc).into_bytes(),
        #[cfg(feature = "pdf")]
        ReportFormat::Pdf => super::pdf::pdf(doc),
        #[cfg(not(feature = "pdf"))]
        ReportFormat::Pdf => unreachable!("checked above"),
    })
}

// ------------------------------------------------------------------------------ CSV

fn csv_field(s: &str) -> String {
    // A leading =, +, - or @ would be a formula in a spreadsheet.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub(crate) fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

struct Rows(String);

impl Rows {
    fn row(&mut self, section: &str, metric: &str, key: &str, value: &Value) {
        let _ = write!(
            self.0,
            "{},{},{},{}\r\n",
            csv_field(section),
            csv_field(metric),
            csv_field(key),
            csv_field(&scalar(value))
        );
    }
    fn map(&mut self, section: &str, metric: &str, m: &Value) {
        if let Some(o) = m.as_object() {
            for (k, v) in o {
                self.row(section, metric, k, v);
            }
        }
    }
    fn top(&mut self, section: &str, metric: &str, t: &Value) {
        for e in t["top"].as_array().into_iter().flatten() {
            self.row(section, metric, &scalar(&e["key"]), &e["count"]);
        }
    }
}

fn csv(doc: &Value) -> String {
    let mut r = Rows(String::from("section,metric,key,value\r\n"));
    r.row("report", "title", "", &doc["title"]);
    r.row("report", "generated_at", "", &doc["generated_at"]);
    r.row("report", "log_id", "", &doc["log_id"]);
    for k in ["report_type", "compliance_framework", "format"] {
        r.row("request", k, "", &doc["request"][k]);
    }
    r.row(
        "request",
        "start_date",
        "",
        &doc["request"]["date_range"]["start_date"],
    );
    r.row(
        "request",
        "end_date",
        "",
        &doc["request"]["date_range"]["end_date"],
    );
    let s = &doc["summary"];
    for k in ["events", "first_seq", "last_seq", "events_in_no_section"] {
        r.row("summary", k, "", &s[k]);
    }
    for k in ["by_event_type", "by_severity", "by_status"] {
        r.map("summary", k, &s[k]);
    }
    for (day, types) in s["events_per_day"].as_object().into_iter().flatten() {
        for (t, n) in types.as_object().into_iter().flatten() {
            r.row("summary", "events_per_day", &format!("{day}/{t}"), n);
        }
    }
    for (day, f) in s["failures_per_day"].as_object().into_iter().flatten() {
        r.row("summary", "failed_logins_per_day", day, &f["failed_logins"]);
        r.row("summary", "denials_per_day", day, &f["denials"]);
    }
    for (name, sec) in doc["sections"].as_object().into_iter().flatten() {
        r.row(name, "events", "", &sec["events"]);
        for k in ["by_event_type", "by_action", "by_status", "by_severity"] {
            r.map(name, k, &sec[k]);
        }
        r.top(name, "top_actors", &sec["top_actors"]);
        r.top(name, "top_source_ips", &sec["top_source_ips"]);
        for list in ["changes", "incidents"] {
            for e in sec[list].as_array().into_iter().flatten() {
                let key = format!("{} {}", scalar(&e["seq"]), scalar(&e["timestamp"]));
                let val = format!(
                    "{} {} {} by {}",
                    scalar(&e["action"]),
                    scalar(&e["status"]),
                    scalar(&e["severity"]),
                    scalar(&e["user_id"])
                );
                r.row(name, list, &key, &Value::String(val));
            }
        }
    }
    for c in doc["controls"]["controls"].as_array().into_iter().flatten() {
        r.row(
            "controls",
            &scalar(&c["id"]),
            &scalar(&c["title"]),
            &c["events"],
        );
    }
    if doc["user"].is_object() {
        r.row("user", "user_id", "", &doc["user"]["user_id"]);
        r.row("user", "events", "", &doc["user"]["events"]);
    }
    let ev = &doc["evidence"];
    r.row("evidence", "ok", "", &ev["ok"]);
    r.row("evidence", "chain_ok", "", &ev["chain_verification"]["ok"]);
    r.row(
        "evidence",
        "chain_records",
        "",
        &ev["chain_verification"]["records"],
    );
    r.row("evidence", "chain_failure", "", &failure_text(ev));
    for k in ["verified", "unverified", "unreadable", "complete"] {
        r.row("evidence", k, "", &ev["range_records"][k]);
    }
    r.row("evidence", "first_seq", "", &ev["seq_range"]["first_seq"]);
    r.row("evidence", "last_seq", "", &ev["seq_range"]["last_seq"]);
    r.row("evidence", "retention_runs", "", &ev["retention"]["runs"]);
    r.row(
        "evidence",
        "legal_holds",
        "",
        &ev["retention"]["holds"]
            .as_array()
            .map_or(0, Vec::len)
            .into(),
    );
    r.row("integrity", "sha256", "", &doc["integrity"]["sha256"]);
    r.row(
        "integrity",
        "hmac_sha256",
        "",
        &doc["integrity"]["hmac_sha256"],
    );
    r.0
}

pub(crate) fn failure_text(ev: &Value) -> Value {
    let f = &ev["chain_verification"]["failure"];
    if f.is_null() {
        return Value::Null;
    }
    Value::String(format!(
        "{} at seq {} in {}: {}",
        scalar(&f["kind"]),
        scalar(&f["seq"]),
        scalar(&f["segment"]),
        scalar(&f["detail"])
    ))
}

// ------------------------------------------------------------------------------ HTML

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

pub(crate) const PALETTE: &[&str] = &[
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

const CSS: &str = "body{font-family:Helvetica,Arial,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;\
text-align:left}td.n{text-align:right}h1{margin-bottom:.2em}.ok{color:#1a7f37}.bad{color:#c62828}\
code{font-size:.9em}svg{display:block;margin:.5em 0 1.5em}";

fn table_map(h: &mut String, id: &str, caption: &str, m: &Value) {
    let _ = write!(
        h,
        "<table id=\"{}\"><tr><th>{}</th><th>events</th></tr>",
        esc(id),
        esc(caption)
    );
    for (k, v) in m.as_object().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\" data-key=\"{}\">{}</td></tr>",
            esc(k),
            esc(k),
            esc(&scalar(v))
        );
    }
    h.push_str("</table>");
}

fn table_top(h: &mut String, id: &str, caption: &str, t: &Value) {
    let _ = write!(
        h,
        "<table id=\"{}\"><tr><th>{}</th><th>events</th></tr>",
        esc(id),
        esc(caption)
    );
    for e in t["top"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
            esc(&scalar(&e["key"])),
            esc(&scalar(&e["count"]))
        );
    }
    h.push_str("</table>");
}

fn table_events(h: &mut String, id: &str, list: &Value) {
    let _ = write!(
        h,
        "<table id=\"{}\"><tr><th>seq</th><th>time</th><th>type</th><th>action</th>\
         <th>status</th><th>severity</th><th>actor</th><th>ip</th><th>resource</th></tr>",
        esc(id)
    );
    for e in list.as_array().into_iter().flatten() {
        h.push_str("<tr>");
        for k in [
            "seq",
            "timestamp",
            "event_type",
            "action",
            "status",
            "severity",
            "user_id",
            "ip_address",
        ] {
            let _ = write!(h, "<td>{}</td>", esc(&scalar(&e[k])));
        }
        let _ = write!(
            h,
            "<td>{} {}</td></tr>",
            esc(&scalar(&e["resource_type"])),
            esc(&scalar(&e["resource_id"]))
        );
    }
    h.push_str("</table>");
}

/// The `events_per_day` member as charted (HTML and PDF): the days in order, the event types
/// seen on any day (sorted), and the largest day's total (at least 1).
pub(crate) struct PerDay<'a> {
    pub days: Vec<(&'a String, &'a Value)>,
    pub types: Vec<&'a str>,
    pub max: u64,
}

pub(crate) fn per_day_series(per_day: &Value) -> PerDay<'_> {
    let days: Vec<(&String, &Value)> = per_day.as_object().into_iter().flatten().collect();
    let mut types: Vec<&str> = Vec::new();
    for (_, t) in &days {
        for k in t.as_object().into_iter().flatten().map(|(k, _)| k.as_str()) {
            if !types.contains(&k) {
                types.push(k);
            }
        }
    }
    types.sort_unstable();
    let max = days
        .iter()
        .map(|(_, t)| day_total(t))
        .max()
        .unwrap_or(0)
        .max(1);
    PerDay { days, types, max }
}

/// One day's events, all types together.
pub(crate) fn day_total(t: &Value) -> u64 {
    t.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(_, n)| n.as_u64())
        .sum()
}

/// Stacked bars of events per day by event type.
fn chart_per_day(h: &mut String, per_day: &Value) {
    let PerDay { days, types, max } = per_day_series(per_day);
    let (w, ht, left, bottom) = (760.0, 220.0, 50.0, 30.0);
    let bw = (w - left) / days.len().max(1) as f64;
    let _ = write!(
        h,
        "<svg id=\"chart-events-per-day\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\"><title>Events per day by type</title>",
        ht + bottom + 20.0 * (types.len() as f64 / 4.0).ceil(),
        ht + bottom + 20.0 * (types.len() as f64 / 4.0).ceil()
    );
    let _ = write!(
        h,
        "<line x1=\"{left}\" y1=\"{ht}\" x2=\"{w}\" y2=\"{ht}\" stroke=\"#888\"/>\
         <text x=\"{}\" y=\"12\" font-size=\"11\" text-anchor=\"end\">{max}</text>\
         <text x=\"{}\" y=\"{ht}\" font-size=\"11\" text-anchor=\"end\">0</text>",
        left - 4.0,
        left - 4.0
    );
    for (i, (day, t)) in days.iter().enumerate() {
        let x = left + i as f64 * bw;
        let mut y = ht;
        for (ti, ty) in types.iter().enumerate() {
            let n = t[*ty].as_u64().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max as f64 * (ht - 10.0);
            y -= bh;
            let _ = write!(
                h,
                "<rect x=\"{x:.2}\" y=\"{y:.2}\" width=\"{:.2}\" height=\"{bh:.2}\" fill=\"{}\">\
                 <title>{} {}: {n}</title></rect>",
                (bw * 0.9).max(0.5),
                PALETTE[ti % PALETTE.len()],
                esc(day),
                esc(ty)
            );
        }
        // A label (about 55 px at 10 px) every few bars so that labels never overlap.
        let every = (64.0 / bw).ceil().max(1.0) as usize;
        if i % every == 0 {
            let _ = write!(
                h,
                "<text x=\"{x:.2}\" y=\"{}\" font-size=\"10\">{}</text>",
                ht + 14.0,
                esc(day)
            );
        }
    }
    for (ti, ty) in types.iter().enumerate() {
        let x = left + (ti % 4) as f64 * 180.0;
        let y = ht + bottom + 20.0 * (ti / 4) as f64;
        let _ = write!(
            h,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{y}\" font-size=\"11\">{}</text>",
            y - 9.0,
            PALETTE[ti % PALETTE.len()],
            x + 14.0,
            esc(ty)
        );
    }
    h.push_str("</svg>");
}

/// Failed logins and denials per day, as two polylines.
fn chart_failures(h: &mut String, f: &Value) {
    let days: Vec<(&String, &Value)> = f.as_object().into_iter().flatten().collect();
    let max = days
        .iter()
        .flat_map(|(_, v)| [v["failed_logins"].as_u64(), v["denials"].as_u64()])
        .flatten()
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, ht, left) = (760.0, 180.0, 50.0);
    let step = if days.len() > 1 {
        (w - left - 10.0) / (days.len() - 1) as f64
    } else {
        0.0
    };
    let _ = write!(
        h,
        "<svg id=\"chart-failures\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\"><title>Failed logins and denials per day</title>\
         <line x1=\"{left}\" y1=\"{ht}\" x2=\"{w}\" y2=\"{ht}\" stroke=\"#888\"/>\
         <text x=\"{}\" y=\"12\" font-size=\"11\" text-anchor=\"end\">{max}</text>",
        ht + 50.0,
        ht + 50.0,
        left - 4.0
    );
    // Day labels, one every few points so that they never overlap (about 55 px each).
    let every = if step > 0.0 {
        (64.0 / step).ceil().max(1.0) as usize
    } else {
        1
    };
    for (i, (day, _)) in days.iter().enumerate() {
        if i % every == 0 {
            let _ = write!(
                h,
                "<text x=\"{:.2}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\">{}</text>",
                left + i as f64 * step,
                ht + 14.0,
                esc(day)
            );
        }
    }
    for (key, color, label, ly) in [
        ("failed_logins", "#e15759", "failed logins", 0.0),
        ("denials", "#4e79a7", "denials", 1.0),
    ] {
        let pts: Vec<String> = days
            .iter()
            .enumerate()
            .map(|(i, (_, v))| {
                let n = v[key].as_u64().unwrap_or(0);
                format!(
                    "{:.2},{:.2}",
                    left + i as f64 * step,
                    ht - n as f64 / max as f64 * (ht - 10.0)
                )
            })
            .collect();
        let _ = write!(
            h,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            pts.join(" ")
        );
        for (p, (day, v)) in pts.iter().zip(&days) {
            let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = write!(
                h,
                "<circle cx=\"{x}\" cy=\"{y}\" r=\"2.5\" fill=\"{color}\"><title>{} {label}: {}</title></circle>",
                esc(day),
                v[key].as_u64().unwrap_or(0)
            );
        }
        let _ = write!(
            h,
            "<rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{color}\"/>\
             <text x=\"{}\" y=\"{}\" font-size=\"11\">{label}</text>",
            left + ly * 160.0,
            ht + 30.0,
            left + ly * 160.0 + 14.0,
            ht + 39.0
        );
    }
    h.push_str("</svg>");
}

/// Horizontal bars of events by severity.
fn chart_severity(h: &mut String, m: &Value) {
    let order = ["critical", "high", "medium", "low", "info"];
    let max = order
        .iter()
        .filter_map(|s| m[*s].as_u64())
        .max()
        .unwrap_or(0)
        .max(1);
    let _ = write!(
        h,
        "<svg id=\"chart-severity\" width=\"760\" height=\"{}\" viewBox=\"0 0 760 {}\" \
         xmlns=\"http://www.w3.org/2000/svg\" role=\"img\"><title>Events by severity</title>",
        order.len() * 24 + 10,
        order.len() * 24 + 10
    );
    let colors = ["#8b0000", "#e15759", "#f28e2b", "#edc948", "#76b7b2"];
    for (i, s) in order.iter().enumerate() {
        let n = m[*s].as_u64().unwrap_or(0);
        let y = 5 + i * 24;
        let bw = n as f64 / max as f64 * 560.0;
        let _ = write!(
            h,
            "<text x=\"70\" y=\"{}\" font-size=\"12\" text-anchor=\"end\">{s}</text>\
             <rect x=\"80\" y=\"{y}\" width=\"{bw:.2}\" height=\"18\" fill=\"{}\"/>\
             <text x=\"{:.2}\" y=\"{}\" font-size=\"12\">{n}</text>",
            y + 13,
            colors[i],
            84.0 + bw,
            y + 13
        );
    }
    h.push_str("</svg>");
}

fn html(doc: &Value) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = scalar(&doc["title"]);
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>{}</title><style>{CSS}</style></head><body>",
        esc(&title)
    );
    let req = &doc["request"];
    let ev = &doc["evidence"];
    let ok = ev["ok"].as_bool().unwrap_or(false);
    let _ = write!(
        h,
        "<h1>{}</h1><p>{} to {} &middot; log <code>{}</code> &middot; generated {}</p>",
        esc(&title),
        esc(&scalar(&req["date_range"]["start_date"])),
        esc(&scalar(&req["date_range"]["end_date"])),
        esc(&scalar(&doc["log_id"])),
        esc(&scalar(&doc["generated_at"]))
    );
    let _ = write!(
        h,
        "<p id=\"evidence-status\" class=\"{}\">Evidence: {}</p>",
        if ok { "ok" } else { "bad" },
        if ok {
            "the log's chain verified and every record of the range verified".to_string()
        } else {
            format!(
                "VERIFICATION FAILED — {}",
                esc(&scalar(&failure_text(ev))).if_empty("records of the range did not verify")
            )
        }
    );
    let s = &doc["summary"];
    let _ = write!(
        h,
        "<h2>Summary</h2><table id=\"summary\"><tr><th>events</th><td class=\"n\" id=\"summary-events\">{}</td></tr>\
         <tr><th>seqs</th><td>{} to {}</td></tr><tr><th>events in no section</th><td class=\"n\">{}</td></tr></table>",
        esc(&scalar(&s["events"])),
        esc(&scalar(&s["first_seq"])),
        esc(&scalar(&s["last_seq"])),
        esc(&scalar(&s["events_in_no_section"]))
    );
    h.push_str("<h3>Events per day by type</h3>");
    chart_per_day(&mut h, &s["events_per_day"]);
    h.push_str("<h3>Failed logins and denials per day</h3>");
    chart_failures(&mut h, &s["failures_per_day"]);
    h.push_str("<h3>Severity</h3>");
    chart_severity(&mut h, &s["by_severity"]);
    table_map(
        &mut h,
        "summary-by_event_type",
        "event type",
        &s["by_event_type"],
    );
    table_map(&mut h, "summary-by_severity", "severity", &s["by_severity"]);
    table_map(&mut h, "summary-by_status", "status", &s["by_status"]);
    if let Some(c) = doc["controls"]["controls"].as_array() {
        let _ = write!(
            h,
            "<h2>Controls ({})</h2><table id=\"controls\"><tr><th>control</th><th>title</th>\
             <th>evidenced by</th><th>events</th></tr>",
            esc(&scalar(&doc["controls"]["framework"]))
        );
        for c in c {
            let secs: Vec<String> = c["evidenced_by"]
                .as_array()
                .into_iter()
                .flatten()
                .map(scalar)
                .collect();
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td></tr>",
                esc(&scalar(&c["id"])),
                esc(&scalar(&c["title"])),
                esc(&secs.join(", ")),
                esc(&scalar(&c["events"]))
            );
        }
        h.push_str("</table>");
    }
    for (name, sec) in doc["sections"].as_object().into_iter().flatten() {
        let _ = write!(
            h,
            "<h2 id=\"section-{}\">{}</h2><p>events: <span class=\"n\" id=\"{}-events\">{}</span></p>",
            esc(name),
            esc(&name.replace('_', " ")),
            esc(name),
            esc(&scalar(&sec["events"]))
        );
        for k in ["by_action", "by_status", "by_severity"] {
            table_map(&mut h, &format!("{name}-{k}"), &k[3..], &sec[k]);
        }
        table_top(
            &mut h,
            &format!("{name}-top_actors"),
            "top actors",
            &sec["top_actors"],
        );
        table_top(
            &mut h,
            &format!("{name}-top_source_ips"),
            "top source IPs",
            &sec["top_source_ips"],
        );
        for list in ["changes", "incidents"] {
            if sec[list].is_array() {
                let _ = write!(
                    h,
                    "<h3>{list} ({} more not listed)</h3>",
                    esc(&scalar(&sec[format!("{list}_omitted")]))
                );
                table_events(&mut h, &format!("{name}-{list}"), &sec[list]);
            }
        }
    }
    if doc["user"].is_object() {
        let u = &doc["user"];
        let _ = write!(
            h,
            "<h2>Timeline of {}</h2><p>{} events, first {}, last {}</p>",
            esc(&scalar(&u["user_id"])),
            esc(&scalar(&u["events"])),
            esc(&scalar(&u["first_seen"])),
            esc(&scalar(&u["last_seen"]))
        );
        table_events(&mut h, "user-timeline", &u["timeline"]);
    }
    let cv = &ev["chain_verification"];
    let rr = &ev["range_records"];
    let _ = write!(
        h,
        "<h2>Evidence</h2><table id=\"evidence\">\
         <tr><th>chain verification</th><td>{}</td></tr>\
         <tr><th>records verified in the log</th><td class=\"n\">{}</td></tr>\
         <tr><th>first failure</th><td>{}</td></tr>\
         <tr><th>records of the range verified / unverified / unreadable</th><td>{} / {} / {}</td></tr>\
         <tr><th>seqs covered</th><td>{} to {}</td></tr>\
         <tr><th>retention runs</th><td class=\"n\">{}</td></tr>\
         <tr><th>legal holds in force</th><td class=\"n\">{}</td></tr>\
         <tr><th>SHA-256</th><td><code>{}</code></td></tr>\
         <tr><th>HMAC-SHA256</th><td><code>{}</code></td></tr></table>",
        if cv["ok"].as_bool() == Some(true) { "ok" } else { "FAILED" },
        esc(&scalar(&cv["records"])),
        esc(&scalar(&failure_text(ev))).if_empty("none"),
        esc(&scalar(&rr["verified"])),
        esc(&scalar(&rr["unverified"])),
        esc(&scalar(&rr["unreadable"])),
        esc(&scalar(&ev["seq_range"]["first_seq"])),
        esc(&scalar(&ev["seq_range"]["last_seq"])),
        esc(&scalar(&ev["retention"]["runs"])),
        ev["retention"]["holds"].as_array().map_or(0, Vec::len),
        esc(&scalar(&doc["integrity"]["sha256"])),
        esc(&scalar(&doc["integrity"]["hmac_sha256"]))
    );
    // Inside a string only: `<` cannot otherwise occur in JSON text, so the script is closed
    // only by its own tag.
    let embedded = serde_json::to_string(doc)
        .expect("report serializes")
        .replace('<', "\\u003c");
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"{EMBED_ID}\">{embedded}</script></body></html>"
    );
    h
}

trait IfEmpty {
    fn if_empty(self, alt: &str) -> String;
}

impl IfEmpty for String {
    fn if_empty(self, alt: &str) -> String {
        if self.is_empty() {
            alt.to_string()
        } else {
            self
        }
    }
}
