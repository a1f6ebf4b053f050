//! Reports rendered by real programs: the PDF turned into text with `pdftotext -layout` and
//! into PNG pages with `pdftoppm` (Debian's poppler-utils), the HTML loaded in headless
//! Chromium (Debian's chromium) — the numbers they show equal the JSON document's, the charts
//! are there, and a tampered record in the range makes the PDF's cover say NOT VERIFIED.
//!
//! A missing program fails the test (CI installs them) unless AUDITLOG_SKIP_POPPLER=1 or
//! AUDITLOG_SKIP_CHROMIUM=1. With AUDITLOG_REPORT_PNG_DIR=DIR the rendered pages are also
//! copied to DIR (docs/report-pdf-cover.png etc. were made that way, see docs/REPORTS.md).
#![cfg(feature = "pdf")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use auditlog::report::{self, ReportFormat, ReportRequest};
use auditlog::{Event, Log};
use chrono::{DateTime, TimeZone, Utc};
use common::{buffered_opts, events, fix_frame_crc, key, layouts};
use serde_json::{json, Value};

// ------------------------------------------------------------------- fixed log (as tests/report.rs)

/// `n` generated events, their timestamps spread 37 minutes apart from 2024-01-01.
fn spread_events(seed: u64, n: usize) -> Vec<Event> {
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    events(seed, n)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.timestamp = Some(t0 + chrono::Duration::minutes(37 * i as i64));
            e
        })
        .collect()
}

fn write(dir: &Path, evs: &[Event]) {
    let log = Log::open(dir, buffered_opts()).expect("open log");
    for c in evs.chunks(100) {
        log.append_batch(c).expect("append");
    }
}

fn request(v: Value) -> ReportRequest {
    ReportRequest::from_value(&v).expect("valid request")
}

fn fixed_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn soc2_request() -> ReportRequest {
    request(json!({
        "report_type": "compliance_audit", "compliance_framework": "soc2_type2",
        "date_range": {"start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-14T23:59:59Z"},
        "format": "pdf",
    }))
}

// ------------------------------------------------------------------- tools

/// The path of `program` on PATH, or None (after saying why) when `skip_var`=1; panics with
/// what to install otherwise.
fn tool(program: &str, skip_var: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(program))
            .find(|c| c.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var(skip_var).as_deref() == Ok("1") => {
            eprintln!("SKIPPED: `{program}` is not installed and {skip_var}=1");
            None
        }
        None => panic!(
            "`{program}` is not on PATH: install Debian's {package} \
             (apt-get install -y --no-install-recommends {package}; .ci/run does), \
             or set {skip_var}=1 to skip this test"
        ),
    }
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `pdftotext -layout` of a PDF file.
fn pdf_text(pdftotext: &Path, pdf: &Path) -> String {
    let out = pdf.with_extension("txt");
    run(Command::new(pdftotext).arg("-layout").arg(pdf).arg(&out));
    std::fs::read_to_string(&out).expect("pdftotext wrote UTF-8 text")
}

/// Copies `src` to `$AUDITLOG_REPORT_PNG_DIR/name` when that variable is set.
fn keep(src: &Path, name: &str) {
    if let Some(d) = std::env::var_os("AUDITLOG_REPORT_PNG_DIR") {
        let dst = Path::new(&d).join(name);
        std::fs::copy(src, &dst).unwrap_or_else(|e| panic!("copy to {}: {e}", dst.display()));
        eprintln!("wrote {}", dst.display());
    }
}

// ------------------------------------------------------------------- PDF

/// A fixed log, its SOC 2 report as JSON document and as PDF file in `dir`.
fn soc2_pdf(dir: &Path) -> (Value, PathBuf) {
    let data = dir.join("log");
    write(&data, &spread_events(21, 700));
    let log = Log::open_read_only(&data, key()).unwrap();
    let r = report::generate_at(&log, &soc2_request(), fixed_time()).unwrap();
    assert_eq!(r.format(), ReportFormat::Pdf);
    let pdf = dir.join("report.pdf");
    std::fs::write(&pdf, r.render().unwrap()).unwrap();
    (r.json().clone(), pdf)
}

/// The whitespace-separated words of each line.
fn words(text: &str) -> Vec<Vec<&str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

/// Whether some line of `lines` is exactly the words `want` (case-insensitive).
fn has_row(lines: &[Vec<&str>], want: &[&str]) -> bool {
    lines.iter().any(|l| {
        l.len() == want.len() && l.iter().zip(want).all(|(a, b)| a.eq_ignore_ascii_case(b))
    })
}

/// The lines of the block that starts at the heading of `section` (its name with spaces or
/// underscores) and ends at the next section's heading or the evidence.
fn section_block<'a>(text: &'a str, section: &str, all: &[&str]) -> Vec<Vec<&'a str>> {
    let heading = |l: &str, name: &str| {
        let t = l.trim().to_ascii_lowercase();
        t.starts_with(&name.replace('_', " ")) || t.starts_with(name)
    };
    let lines: Vec<&str> = text.lines().collect();
    // The first heading line followed (within three lines) by "events: N".
    let start = (0..lines.len())
        .find(|&i| {
            heading(lines[i], section)
                && lines[i..(i + 4).min(lines.len())]
                    .iter()
                    .any(|l| l.trim_start().to_ascii_lowercase().starts_with("events:"))
        })
        .unwrap_or_else(|| panic!("no heading of section {section} in the PDF text:\n{text}"));
    let end = (start + 1..lines.len())
        .find(|&i| {
            all.iter().any(|o| *o != section && heading(lines[i], o))
                || lines[i].trim().eq_ignore_ascii_case("evidence")
        })
        .unwrap_or(lines.len());
    lines[start..end]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn pdf_text_shows_the_json_numbers() {
    let Some(pdftotext) = tool("pdftotext", "AUDITLOG_SKIP_POPPLER", "poppler-utils") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (doc, pdf) = soc2_pdf(dir.path());
    let text = pdf_text(&pdftotext, &pdf);
    let lines = words(&text);
    let s = &doc["summary"];
    let total = s["events"].to_string();
    assert!(s["events"].as_u64().unwrap() > 300, "a real range");
    assert!(
        has_row(&lines, &["events", &total]),
        "total events {total} not shown:\n{text}"
    );
    for (k, n) in s["by_event_type"].as_object().unwrap() {
        assert!(has_row(&lines, &[k, &n.to_string()]), "summary {k} {n}");
    }
    for (k, n) in s["by_status"].as_object().unwrap() {
        assert!(
            has_row(&lines, &[k, &n.to_string()]),
            "summary status {k} {n}"
        );
    }
    // Each section: its total, and its counts by action, status and severity in its block.
    let sections = doc["sections"].as_object().unwrap();
    let names: Vec<&str> = sections.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 5, "compliance_audit covers every section");
    for (name, sec) in sections {
        let block = section_block(&text, name, &names);
        let n = sec["events"].to_string();
        assert!(
            has_row(&block, &["events:", &n]) || has_row(&block, &["events", &n]),
            "{name}: events {n} not shown in {block:?}"
        );
        for dim in ["by_action", "by_status", "by_severity"] {
            for (k, v) in sec[dim].as_object().unwrap() {
                assert!(
                    has_row(&block, &[k, &v.to_string()]),
                    "{name} {dim} {k} = {v} not shown in {block:?}"
                );
            }
        }
        for t in sec["top_actors"]["top"].as_array().unwrap() {
            let (k, c) = (t["key"].as_str().unwrap(), t["count"].to_string());
            assert!(
                block
                    .iter()
                    .any(|l| l.windows(2).any(|w| w == [k, c.as_str()])),
                "{name}: top actor {k} {c}"
            );
        }
    }
    // Controls with their event counts.
    for c in doc["controls"]["controls"].as_array().unwrap() {
        let (id, n) = (c["id"].as_str().unwrap(), c["events"].to_string());
        assert!(
            lines
                .iter()
                .any(|l| l.first() == Some(&id) && l.last() == Some(&n.as_str())),
            "control {id} with {n} events"
        );
    }
    // The seal, whole, on the cover (the first page).
    let cover = text.split('\u{c}').next().unwrap();
    for k in ["sha256", "hmac_sha256"] {
        let hex = doc["integrity"][k].as_str().unwrap();
        assert_eq!(hex.len(), 64);
        assert!(cover.contains(hex), "{k} {hex} on the cover:\n{cover}");
    }
    assert!(
        cover.contains(doc["log_id"].as_str().unwrap()),
        "log id on the cover"
    );
    assert!(cover.contains("2024-01-01T00:00:00Z") && cover.contains("2024-01-14T23:59:59Z"));
    assert!(
        cover.contains("2024-06-01T12:00:00Z"),
        "generated_at on the cover"
    );
    assert!(
        cover.to_ascii_uppercase().contains("VERIFIED")
            && !cover.to_ascii_uppercase().contains("NOT VERIFIED"),
        "the cover says verified:\n{cover}"
    );
    // The attached document, as poppler extracts it, is the report's JSON document.
    if let Some(pdfdetach) = tool("pdfdetach", "AUDITLOG_SKIP_POPPLER", "poppler-utils") {
        let out = dir.path().join("attached.json");
        run(Command::new(pdfdetach)
            .args(["-save", "1", "-o"])
            .arg(&out)
            .arg(&pdf));
        let attached: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(
            attached, doc,
            "the PDF's auditlog-report.json is the document"
        );
    }
    // Every page numbered "Page N of M".
    let pages: Vec<&str> = text
        .split('\u{c}')
        .filter(|p| !p.trim().is_empty())
        .collect();
    let m = pages.len();
    assert!(m >= 3, "cover and body pages, got {m}");
    for (i, p) in pages.iter().enumerate() {
        let want = format!("Page {} of {m}", i + 1);
        assert!(p.contains(&want), "page {} lacks {want:?}:\n{p}", i + 1);
    }
}

#[test]
fn pdftoppm_renders_one_png_per_page() {
    let Some(pdftoppm) = tool("pdftoppm", "AUDITLOG_SKIP_POPPLER", "poppler-utils") else {
        return;
    };
    let Some(pdftotext) = tool("pdftotext", "AUDITLOG_SKIP_POPPLER", "poppler-utils") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_, pdf) = soc2_pdf(dir.path());
    let text = pdf_text(&pdftotext, &pdf);
    let pages = text.split('\u{c}').filter(|p| !p.trim().is_empty()).count();
    let out = dir.path().join("png");
    std::fs::create_dir(&out).unwrap();
    let res = std::env::var("AUDITLOG_REPORT_PNG_RES").unwrap_or_else(|_| "50".into());
    run(Command::new(&pdftoppm)
        .args(["-png", "-r", &res])
        .arg(&pdf)
        .arg(out.join("page")));
    let mut pngs: Vec<PathBuf> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pngs.sort();
    assert_eq!(pngs.len(), pages, "one PNG per page: {pngs:?}");
    for p in &pngs {
        let b = std::fs::read(p).unwrap();
        assert!(
            b.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is a PNG",
            p.display()
        );
        // The IHDR: A4 portrait at the resolution asked for.
        let (w, h) = (
            u32::from_be_bytes(b[16..20].try_into().unwrap()),
            u32::from_be_bytes(b[20..24].try_into().unwrap()),
        );
        assert!(h > w && w > 300, "{}: {w}x{h}", p.display());
    }
    keep(&pdf, "report-sample.pdf");
    keep(&pngs[0], "report-pdf-cover.png");
    keep(&pngs[1], "report-pdf-page2.png");
}

#[test]
fn a_tampered_record_in_the_range_makes_the_cover_say_not_verified() {
    let Some(pdftotext) = tool("pdftotext", "AUDITLOG_SKIP_POPPLER", "poppler-utils") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    write(&data, &spread_events(8, 600));
    let segs = layouts(&data);
    let seg = &segs[0];
    let frame = seg.frames[seg.frames.len() / 3];
    let mut bytes = std::fs::read(&seg.path).unwrap();
    // The stored MAC of one record, its CRC fixed: only the keyed chain notices.
    bytes[frame.offset + frame.len - 36] ^= 0x04;
    fix_frame_crc(&mut bytes, frame);
    std::fs::write(&seg.path, bytes).unwrap();
    let log = Log::open_read_only(&data, key()).unwrap();
    let r = report::generate_at(&log, &soc2_request(), fixed_time()).unwrap();
    assert!(!r.evidence_ok());
    let (lo, hi) = (
        r.json()["summary"]["first_seq"].as_u64().unwrap(),
        r.json()["summary"]["last_seq"].as_u64().unwrap(),
    );
    assert!(
        (lo..=hi).contains(&frame.seq),
        "the tampered record is in the range"
    );
    let pdf = dir.path().join("tampered.pdf");
    std::fs::write(&pdf, r.render().unwrap()).unwrap();
    let text = pdf_text(&pdftotext, &pdf);
    let cover = text.split('\u{c}').next().unwrap();
    assert!(
        cover.contains("NOT VERIFIED"),
        "the cover of a report over a tampered record says NOT VERIFIED:\n{cover}"
    );
    assert!(
        cover.contains(&frame.seq.to_string()),
        "the cover names the failing seq {}:\n{cover}",
        frame.seq
    );
}

#[test]
fn the_pdf_file_is_well_formed() {
    // Checked without poppler: header, trailer, and every xref offset at its object.
    let dir = tempfile::tempdir().unwrap();
    let (_, pdf) = soc2_pdf(dir.path());
    let b = std::fs::read(&pdf).unwrap();
    assert!(b.starts_with(b"%PDF-1.7\n"));
    assert!(b.ends_with(b"%%EOF\n"));
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).rposition(|w| w == needle);
    let at = |off: usize, want: &str| b[off..].starts_with(want.as_bytes());
    let sx = find(&b, b"startxref\n").expect("startxref");
    let tail = std::str::from_utf8(&b[sx..]).expect("the trailer is ASCII");
    let xref: usize = tail.lines().nth(1).unwrap().trim().parse().unwrap();
    assert!(at(xref, "xref\n0 "), "startxref points at the xref");
    let table = std::str::from_utf8(&b[xref..sx]).expect("the xref is ASCII");
    let mut lines = table.lines().skip(1);
    let head: Vec<usize> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(head[0], 0);
    let entries: Vec<&str> = lines.by_ref().take(head[1]).collect();
    assert_eq!(entries.len(), head[1]);
    assert!(entries[0].starts_with("0000000000 65535 f"));
    for (i, e) in entries.iter().enumerate().skip(1) {
        assert_eq!(e.trim_end().len(), 18, "xref entry {i}: {e:?}");
        let off: usize = e[..10].parse().unwrap();
        assert!(
            at(off, &format!("{i} 0 obj")),
            "xref entry {i} ({off}) is not at `{i} 0 obj`"
        );
    }
    let text = String::from_utf8_lossy(&b);
    for font in ["/Helvetica ", "/Helvetica-Bold ", "/WinAnsiEncoding"] {
        assert!(text.contains(font), "{font}");
    }
}

// ------------------------------------------------------------------- HTML in Chromium

fn chromium() -> Option<PathBuf> {
    let p = Path::new("/usr/bin/chromium");
    if p.is_file() {
        return Some(p.to_path_buf());
    }
    tool("chromium", "AUDITLOG_SKIP_CHROMIUM", "chromium")
}

fn chromium_cmd(bin: &Path, profile: &Path) -> Command {
    let mut c = Command::new(bin);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

/// The text of the element with `id="…"` in a serialized DOM (its first text node).
fn by_id<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no element with id {id} in the DOM"));
    let open = at + dom[at..].find('>').unwrap() + 1;
    let close = open + dom[open..].find('<').unwrap();
    &dom[open..close]
}

#[test]
fn html_in_headless_chromium_shows_the_json_numbers_and_charts() {
    let Some(bin) = chromium() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    write(&data, &spread_events(21, 700));
    let log = Log::open_read_only(&data, key()).unwrap();
    let r = report::generate_at(&log, &soc2_request(), fixed_time()).unwrap();
    let doc = r.json();
    let html = dir.path().join("report.html");
    std::fs::write(&html, r.render_as(ReportFormat::Html).unwrap()).unwrap();
    let url = format!("file://{}", html.display());
    let dom = String::from_utf8(run(chromium_cmd(&bin, &dir.path().join("profile"))
        .arg("--dump-dom")
        .arg(&url)))
    .expect("the DOM is UTF-8");
    assert!(dom.contains("<svg"), "chromium printed the DOM: {dom:.300}");
    let s = &doc["summary"];
    assert_eq!(by_id(&dom, "summary-events"), s["events"].to_string());
    // The summary tables as the browser parsed them.
    for (table, m) in [
        ("summary-by_event_type", &s["by_event_type"]),
        ("summary-by_severity", &s["by_severity"]),
        ("summary-by_status", &s["by_status"]),
    ] {
        let start = dom.find(&format!("id=\"{table}\"")).expect(table);
        let t = &dom[start..start + dom[start..].find("</table>").unwrap()];
        for (k, n) in m.as_object().unwrap() {
            assert!(
                t.contains(&format!("data-key=\"{k}\">{n}</td>")),
                "{table}: {k} = {n}"
            );
        }
    }
    for (name, sec) in doc["sections"].as_object().unwrap() {
        assert_eq!(
            by_id(&dom, &format!("{name}-events")),
            sec["events"].to_string(),
            "{name}"
        );
    }
    assert!(dom.contains(doc["integrity"]["sha256"].as_str().unwrap()));
    assert!(by_id(&dom, "evidence-status").contains("verified"));
    // The three charts, with their marks: one bar per (day, type) with events, one dot per
    // day with failures, a bar per severity.
    let svg = |id: &str| {
        let start = dom
            .find(&format!("<svg id=\"{id}\""))
            .unwrap_or_else(|| panic!("chart {id} in the DOM"));
        &dom[start..start + dom[start..].find("</svg>").unwrap()]
    };
    let bars: usize = s["events_per_day"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| {
            t.as_object()
                .unwrap()
                .values()
                .filter(|n| n != &&json!(0))
                .count()
        })
        .sum();
    let types = s["by_event_type"].as_object().unwrap().len();
    assert_eq!(
        svg("chart-events-per-day").matches("<rect").count(),
        bars + types,
        "a bar per day and type, a legend swatch per type"
    );
    let fail_days = s["failures_per_day"].as_object().unwrap().len();
    assert_eq!(
        svg("chart-failures").matches("<circle").count(),
        2 * fail_days
    );
    assert_eq!(svg("chart-severity").matches("<rect").count(), 5);
    // A screenshot for docs/ when asked.
    if std::env::var_os("AUDITLOG_REPORT_PNG_DIR").is_some() {
        let shot = dir.path().join("report-html.png");
        run(chromium_cmd(&bin, &dir.path().join("profile"))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=900,1100")
            .arg(&url));
        keep(&shot, "report-html.png");
    }
}

#[test]
fn a_user_activity_pdf_shows_the_timeline_evidence_and_escaped_text() {
    let Some(pdftotext) = tool("pdftotext", "AUDITLOG_SKIP_POPPLER", "poppler-utils") else {
        return;
    };
    // One user whose name needs escaping (parentheses, backslash), WinAnsi (ë, —) and a
    // character outside it (名, replaced by `?`).
    let user = "Zoë (ops) \\ 名 — 7";
    let mut evs = spread_events(9, 400);
    for e in evs.iter_mut().step_by(25) {
        e.actor.user_id = Some(user.to_string());
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    write(&data, &evs);
    let log = Log::open_read_only(&data, key()).unwrap();
    let req = request(json!({
        "report_type": "user_activity", "user_id": user,
        "date_range": {"start_date": "2024-01-01", "end_date": "2024-12-31"},
        "format": "pdf", "include_evidence": true,
    }));
    let r = report::generate_at(&log, &req, fixed_time()).unwrap();
    let doc = r.json();
    let n = doc["user"]["events"].as_u64().unwrap();
    assert_eq!(n, 16);
    let pdf = dir.path().join("user.pdf");
    std::fs::write(&pdf, r.render().unwrap()).unwrap();
    let bytes = std::fs::read(&pdf).unwrap();
    let embedded = bytes
        .windows(19)
        .position(|w| w == b"/Type /EmbeddedFile")
        .expect("the embedded JSON document");
    assert!(
        !bytes[..embedded].windows(3).any(|w| w == "名".as_bytes()),
        "no UTF-8 in the pages' content streams: WinAnsi bytes or `?`"
    );
    // The embedded document keeps the name as it is, and the PDF verifies.
    let check = report::verify(&bytes, &key()).unwrap();
    assert!(check.ok && check.sha256 == r.sha256(), "{check:?}");
    let text = pdf_text(&pdftotext, &pdf);
    let shown = "Zoë (ops) \\ ? — 7";
    assert!(
        text.contains(&format!("Timeline of {shown}")),
        "the escaped, WinAnsi-mapped name in the timeline heading:\n{text}"
    );
    assert!(
        text.split('\u{c}').next().unwrap().contains(shown),
        "and on the cover"
    );
    // Every timeline and evidence event is listed by seq, with its record MAC result.
    let lines = words(&text);
    for t in doc["user"]["timeline"].as_array().unwrap() {
        let seq = t["seq"].to_string();
        let rows = lines
            .iter()
            .filter(|l| l.first() == Some(&seq.as_str()))
            .count();
        assert!(
            rows >= 2,
            "seq {seq} in the timeline and in the evidence events ({rows} rows)"
        );
    }
    assert_eq!(
        doc["evidence"]["events"].as_array().unwrap().len() as u64,
        n
    );
    assert!(
        has_row(&lines, &["events", &n.to_string()]),
        "the total of {n} events"
    );
}
