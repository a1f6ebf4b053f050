//! A hand-written PDF 1.7 rendering of a report document: the standard Type1 fonts Helvetica
//! and Helvetica-Bold in WinAnsiEncoding (no embedded fonts), a cover page with the seal and
//! the evidence status, the HTML report's tables (continued across pages, header repeated)
//! and its three charts drawn as vector graphics, and "Page N of M" on every page.

use std::fmt::Write as _;

use serde_json::Value;

use super::render::{failure_text, per_day_series, scalar, PerDay, PALETTE};
use super::seal::PDF_EMBED_DICT;

/// A4 portrait, in points.
const PAGE_W: f64 = 595.0;
const PAGE_H: f64 = 842.0;
const MARGIN: f64 = 50.0;
/// The lowest baseline body text may use (the footer sits below).
const BOTTOM: f64 = 60.0;
const CONTENT_W: f64 = PAGE_W - 2.0 * MARGIN;

/// Advance widths (1/1000 em) of Helvetica for ASCII 32..=126, from its AFM.
const HELV: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, // 0..?
    1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, // P.._
    333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, // `..o
    556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584, // p..~
];

/// Advance widths (1/1000 em) of Helvetica-Bold for ASCII 32..=126, from its AFM.
const HELV_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, // ' '../
    556, 556, 556, 556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, // 0..?
    975, 722, 722, 722, 722, 667, 611, 778, 722, 278, 556, 722, 611, 833, 722, 778, // @..O
    667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 333, 278, 333, 584, 556, // P.._
    333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556, 278, 889, 611, 611, // `..o
    611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584, // p..~
];

/// The WinAnsiEncoding byte of `c`, or `?` for a character the encoding lacks.
fn win_ansi(c: char) -> u8 {
    match c {
        ' '..='~' => c as u8,
        '\u{a0}'..='\u{ff}' => c as u32 as u8,
        '\u{2022}' => 0x95,
        '\u{2013}' => 0x96,
        '\u{2014}' => 0x97,
        '\u{2018}' => 0x91,
        '\u{2019}' => 0x92,
        '\u{201c}' => 0x93,
        '\u{201d}' => 0x94,
        '\u{2026}' => 0x85,
        '\u{20ac}' => 0x80,
        '\u{2122}' => 0x99,
        _ => b'?',
    }
}

/// Width of one encoded byte at 1000 units per em.
fn byte_width(b: u8, bold: bool) -> u16 {
    let t = if bold { &HELV_BOLD } else { &HELV };
    match b {
        32..=126 => t[(b - 32) as usize],
        // Outside ASCII: the width of a lowercase letter is a close, safe estimate for
        // Latin-1 letters; punctuation (dashes, quotes) is narrower.
        0x95 => 350,
        0x96 => 556,
        0x97 => 1000,
        0x85 => 1000,
        _ => 556,
    }
}

/// Width of `s` in points at `size`.
pub(crate) fn text_width(s: &str, size: f64, bold: bool) -> f64 {
    s.chars()
        .map(|c| f64::from(byte_width(win_ansi(c), bold)))
        .sum::<f64>()
        * size
        / 1000.0
}

/// `s` cut (with "...") so that it fits in `w` points.
pub(crate) fn truncate(s: &str, w: f64, size: f64, bold: bool) -> String {
    if text_width(s, size, bold) <= w {
        return s.to_string();
    }
    let ell = text_width("...", size, bold);
    let mut out = String::new();
    let mut used = 0.0;
    for c in s.chars() {
        let cw = f64::from(byte_width(win_ansi(c), bold)) * size / 1000.0;
        if used + cw + ell > w {
            break;
        }
        used += cw;
        out.push(c);
    }
    out.push_str("...");
    out
}

/// `s` broken at spaces (or inside a word longer than a line) into lines of at most `w`.
pub(crate) fn wrap(s: &str, w: f64, size: f64, bold: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in s.split(' ') {
        let cand = if cur.is_empty() {
            word.to_string()
        } else {
            format!("{cur} {word}")
        };
        if text_width(&cand, size, bold) <= w {
            cur = cand;
            continue;
        }
        if !cur.is_empty() {
            lines.push(std::mem::take(&mut cur));
        }
        let mut rest = word.to_string();
        while text_width(&rest, size, bold) > w {
            let mut head = String::new();
            for c in rest.chars() {
                if text_width(&format!("{head}{c}"), size, bold) > w && !head.is_empty() {
                    break;
                }
                head.push(c);
            }
            rest = rest[head.len()..].to_string();
            lines.push(head);
        }
        cur = rest;
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

/// A PDF string literal of `s` in WinAnsiEncoding: `(`, `)` and `\` escaped, bytes outside
/// ASCII written as octal escapes.
pub(crate) fn pdf_string(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('(');
    for c in s.chars() {
        match win_ansi(c) {
            b'(' => o.push_str("\\("),
            b')' => o.push_str("\\)"),
            b'\\' => o.push_str("\\\\"),
            b @ 32..=126 => o.push(b as char),
            b => {
                let _ = write!(o, "\\{b:03o}");
            }
        }
    }
    o.push(')');
    o
}

fn rgb(hex: &str) -> (f64, f64, f64) {
    let h = hex.trim_start_matches('#');
    let p = |i: usize| f64::from(u8::from_str_radix(&h[i..i + 2], 16).unwrap_or(0)) / 255.0;
    if h.len() == 6 {
        (p(0), p(2), p(4))
    } else {
        (0.0, 0.0, 0.0)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

/// Pages being laid out top to bottom; `y` is the current baseline (PDF y grows upward).
struct Writer {
    pages: Vec<String>,
    y: f64,
}

impl Writer {
    fn new() -> Writer {
        Writer {
            pages: vec![String::new()],
            y: PAGE_H - MARGIN,
        }
    }

    fn cur(&mut self) -> &mut String {
        self.pages.last_mut().expect("a page")
    }

    fn new_page(&mut self) {
        self.pages.push(String::new());
        self.y = PAGE_H - MARGIN;
    }

    /// Starts a new page unless `h` points fit below the current position.
    fn need(&mut self, h: f64) {
        if self.y - h < BOTTOM {
            self.new_page();
        }
    }

    fn text(&mut self, x: f64, y: f64, size: f64, bold: bool, s: &str) {
        let f = if bold { "F2" } else { "F1" };
        let lit = pdf_string(s);
        let _ = writeln!(self.cur(), "BT /{f} {size} Tf {x:.2} {y:.2} Td {lit} Tj ET");
    }

    fn text_in(&mut self, x: f64, y: f64, w: f64, font: (f64, bool), a: Align, s: &str) {
        let (size, bold) = font;
        let s = truncate(s, w, size, bold);
        let x = match a {
            Align::Left => x,
            Align::Right => x + w - text_width(&s, size, bold),
        };
        self.text(x, y, size, bold, &s);
    }

    fn fill(&mut self, c: &str) {
        let (r, g, b) = rgb(c);
        let _ = writeln!(self.cur(), "{r:.3} {g:.3} {b:.3} rg");
    }

    fn stroke(&mut self, c: &str) {
        let (r, g, b) = rgb(c);
        let _ = writeln!(self.cur(), "{r:.3} {g:.3} {b:.3} RG");
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, c: &str) {
        self.fill(c);
        let _ = writeln!(self.cur(), "{x:.2} {y:.2} {w:.2} {h:.2} re f");
        self.fill("#222222");
    }

    fn line(&mut self, x1: f64, y1: f64, x2: f64, y2: f64, c: &str, width: f64) {
        self.stroke(c);
        let _ = writeln!(
            self.cur(),
            "{width:.2} w {x1:.2} {y1:.2} m {x2:.2} {y2:.2} l S"
        );
    }

    fn heading(&mut self, s: &str, size: f64) {
        self.need(size * 2.0 + 40.0);
        self.y -= size * 0.6;
        let y = self.y;
        self.text(MARGIN, y, size, true, s);
        self.y -= size * 1.0;
    }

    fn para(&mut self, s: &str, size: f64, bold: bool) {
        for l in wrap(s, CONTENT_W, size, bold) {
            self.need(size * 1.4);
            let y = self.y;
            self.text(MARGIN, y, size, bold, &l);
            self.y -= size * 1.4;
        }
    }

    /// A table: column widths as fractions of the content width; rows continue on the next
    /// page with the header repeated.
    fn table(&mut self, headers: &[&str], widths: &[f64], align: &[Align], rows: &[Vec<String>]) {
        self.table_sized(headers, widths, align, rows, 8.5);
    }

    fn table_sized(
        &mut self,
        headers: &[&str],
        widths: &[f64],
        align: &[Align],
        rows: &[Vec<String>],
        size: f64,
    ) {
        const ROW: f64 = 13.0;
        let xs: Vec<f64> = widths
            .iter()
            .scan(MARGIN, |x, w| {
                let at = *x;
                *x += w * CONTENT_W;
                Some(at)
            })
            .collect();
        let header = |w: &mut Writer| {
            let top = w.y;
            w.rect(MARGIN, top - ROW + 3.0, CONTENT_W, ROW, "#e8ecf1");
            for (i, h) in headers.iter().enumerate() {
                w.text_in(
                    xs[i] + 3.0,
                    top - ROW + 6.5,
                    widths[i] * CONTENT_W - 6.0,
                    (size, true),
                    align[i],
                    h,
                );
            }
            w.y -= ROW;
        };
        self.need(ROW * 3.0);
        header(self);
        if rows.is_empty() {
            let y = self.y;
            self.text(MARGIN + 3.0, y - ROW + 6.5, 8.0, false, "(none)");
            self.y -= ROW;
        }
        for (ri, r) in rows.iter().enumerate() {
            if self.y - ROW < BOTTOM {
                self.new_page();
                header(self);
            }
            let top = self.y;
            if ri % 2 == 1 {
                self.rect(MARGIN, top - ROW + 3.0, CONTENT_W, ROW, "#f6f7f9");
            }
            for (i, cell) in r.iter().enumerate() {
                self.text_in(
                    xs[i] + 3.0,
                    top - ROW + 6.5,
                    widths[i] * CONTENT_W - 6.0,
                    (size, false),
                    align[i],
                    cell,
                );
            }
            self.y -= ROW;
        }
        let y = self.y + 3.0;
        self.line(MARGIN, y, MARGIN + CONTENT_W, y, "#bbbbbb", 0.5);
        self.y -= 12.0;
    }

    fn map_table(&mut self, caption: &str, m: &Value) {
        let rows: Vec<Vec<String>> = m
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| vec![k.clone(), scalar(v)])
            .collect();
        self.table(
            &[caption, "events"],
            &[0.75, 0.25],
            &[Align::Left, Align::Right],
            &rows,
        );
    }

    fn top_table(&mut self, caption: &str, t: &Value) {
        let rows: Vec<Vec<String>> = t["top"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| vec![scalar(&e["key"]), scalar(&e["count"])])
            .collect();
        self.table(
            &[caption, "events"],
            &[0.75, 0.25],
            &[Align::Left, Align::Right],
            &rows,
        );
    }

    fn events_table(&mut self, list: &Value) {
        let rows: Vec<Vec<String>> = list
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let mut r: Vec<String> = [
                    "seq",
                    "timestamp",
                    "event_type",
                    "action",
                    "status",
                    "severity",
                    "user_id",
                    "ip_address",
                ]
                .iter()
                .map(|k| scalar(&e[*k]))
                .collect();
                r.push(format!(
                    "{} {}",
                    scalar(&e["resource_type"]),
                    scalar(&e["resource_id"])
                ));
                r
            })
            .collect();
        self.table_sized(
            &[
                "seq", "time", "type", "action", "status", "severity", "actor", "ip", "resource",
            ],
            &[0.055, 0.175, 0.16, 0.14, 0.075, 0.07, 0.095, 0.125, 0.105],
            &[
                Align::Right,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
            ],
            &rows,
            7.5,
        );
    }
}

/// Stacked bars of events per day by event type.
fn chart_per_day(w: &mut Writer, per_day: &Value) {
    let PerDay { days, types, max } = per_day_series(per_day);
    let legend_rows = types.len().div_ceil(4) as f64;
    let (plot_h, left) = (150.0, 40.0);
    w.need(plot_h + 30.0 + 14.0 * legend_rows);
    let top = w.y;
    let base = top - plot_h;
    let plot_w = CONTENT_W - left;
    let x0 = MARGIN + left;
    w.line(x0, base, x0 + plot_w, base, "#888888", 0.6);
    w.line(x0, base, x0, top, "#888888", 0.6);
    w.text_in(
        MARGIN,
        top - 8.0,
        left - 4.0,
        (8.0, false),
        Align::Right,
        &max.to_string(),
    );
    w.text_in(
        MARGIN,
        base - 3.0,
        left - 4.0,
        (8.0, false),
        Align::Right,
        "0",
    );
    let bw = plot_w / days.len().max(1) as f64;
    for (i, (day, t)) in days.iter().enumerate() {
        let x = x0 + i as f64 * bw;
        let mut y = base;
        for (ti, ty) in types.iter().enumerate() {
            let n = t[*ty].as_u64().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max as f64 * (plot_h - 10.0);
            w.rect(
                x + bw * 0.05,
                y,
                (bw * 0.9).max(0.5),
                bh,
                PALETTE[ti % PALETTE.len()],
            );
            y += bh;
        }
        let every = days.len().div_ceil(8).max(1);
        if i % every == 0 {
            w.text(x, base - 11.0, 7.0, false, day);
        }
    }
    let mut ly = base - 26.0;
    for (ti, ty) in types.iter().enumerate() {
        let lx = x0 + (ti % 4) as f64 * (plot_w / 4.0);
        if ti > 0 && ti % 4 == 0 {
            ly -= 14.0;
        }
        w.rect(lx, ly - 1.0, 8.0, 8.0, PALETTE[ti % PALETTE.len()]);
        w.text_in(
            lx + 11.0,
            ly,
            plot_w / 4.0 - 14.0,
            (8.0, false),
            Align::Left,
            ty,
        );
    }
    w.y = ly - 16.0;
}

/// Failed logins and denials per day, as two lines.
fn chart_failures(w: &mut Writer, f: &Value) {
    let days: Vec<(&String, &Value)> = f.as_object().into_iter().flatten().collect();
    let max = days
        .iter()
        .flat_map(|(_, v)| [v["failed_logins"].as_u64(), v["denials"].as_u64()])
        .flatten()
        .max()
        .unwrap_or(0)
        .max(1);
    let (plot_h, left) = (120.0, 40.0);
    w.need(plot_h + 44.0);
    let top = w.y;
    let base = top - plot_h;
    let plot_w = CONTENT_W - left - 10.0;
    let x0 = MARGIN + left;
    w.line(x0, base, x0 + plot_w + 10.0, base, "#888888", 0.6);
    w.line(x0, base, x0, top, "#888888", 0.6);
    w.text_in(
        MARGIN,
        top - 8.0,
        left - 4.0,
        (8.0, false),
        Align::Right,
        &max.to_string(),
    );
    w.text_in(
        MARGIN,
        base - 3.0,
        left - 4.0,
        (8.0, false),
        Align::Right,
        "0",
    );
    let step = if days.len() > 1 {
        plot_w / (days.len() - 1) as f64
    } else {
        0.0
    };
    for (li, (key, color, label)) in [
        ("failed_logins", "#e15759", "failed logins"),
        ("denials", "#4e79a7", "denials"),
    ]
    .into_iter()
    .enumerate()
    {
        let pts: Vec<(f64, f64)> = days
            .iter()
            .enumerate()
            .map(|(i, (_, v))| {
                let n = v[key].as_u64().unwrap_or(0);
                (
                    x0 + i as f64 * step,
                    base + n as f64 / max as f64 * (plot_h - 10.0),
                )
            })
            .collect();
        w.stroke(color);
        let mut path = String::from("1.5 w ");
        for (i, (x, y)) in pts.iter().enumerate() {
            let _ = write!(path, "{x:.2} {y:.2} {} ", if i == 0 { "m" } else { "l" });
        }
        if !pts.is_empty() {
            let _ = writeln!(w.cur(), "{path}S");
        }
        for (x, y) in &pts {
            w.rect(x - 1.5, y - 1.5, 3.0, 3.0, color);
        }
        let lx = x0 + li as f64 * 120.0;
        w.rect(lx, base - 25.0, 8.0, 8.0, color);
        w.text(lx + 11.0, base - 24.0, 8.0, false, label);
    }
    let every = days.len().div_ceil(8).max(1);
    for (i, (day, _)) in days.iter().enumerate() {
        if i % every == 0 {
            w.text(x0 + i as f64 * step - 15.0, base - 11.0, 7.0, false, day);
        }
    }
    w.y = base - 42.0;
}

/// Horizontal bars of events by severity.
fn chart_severity(w: &mut Writer, m: &Value) {
    let order = ["critical", "high", "medium", "low", "info"];
    let colors = ["#8b0000", "#e15759", "#f28e2b", "#edc948", "#76b7b2"];
    let max = order
        .iter()
        .filter_map(|s| m[*s].as_u64())
        .max()
        .unwrap_or(0)
        .max(1);
    w.need(order.len() as f64 * 18.0 + 10.0);
    for (i, s) in order.iter().enumerate() {
        let n = m[*s].as_u64().unwrap_or(0);
        let y = w.y - 12.0;
        let bw = n as f64 / max as f64 * (CONTENT_W - 140.0);
        w.text_in(MARGIN, y + 3.0, 60.0, (9.0, false), Align::Right, s);
        w.rect(MARGIN + 66.0, y, bw, 12.0, colors[i]);
        w.text(MARGIN + 70.0 + bw, y + 3.0, 9.0, false, &n.to_string());
        w.y -= 18.0;
    }
    w.y -= 10.0;
}

fn cover(w: &mut Writer, doc: &Value) {
    let req = &doc["request"];
    let ev = &doc["evidence"];
    let ok = ev["ok"].as_bool().unwrap_or(false);
    w.rect(0.0, PAGE_H - 120.0, PAGE_W, 120.0, "#1f3b5a");
    let _ = writeln!(w.cur(), "1 1 1 rg");
    w.text(
        MARGIN,
        PAGE_H - 60.0,
        11.0,
        false,
        "auditlog compliance report",
    );
    let title = truncate(&scalar(&doc["title"]), CONTENT_W, 22.0, true);
    w.text(MARGIN, PAGE_H - 92.0, 22.0, true, &title);
    w.fill("#222222");
    w.y = PAGE_H - 170.0;
    let rows: Vec<(&str, String)> = vec![
        ("Log", scalar(&doc["log_id"])),
        (
            "Date range",
            format!(
                "{} to {}",
                scalar(&req["date_range"]["start_date"]),
                scalar(&req["date_range"]["end_date"])
            ),
        ),
        ("Report type", scalar(&req["report_type"])),
        (
            "Framework",
            scalar(&req["compliance_framework"]).if_empty_then("none"),
        ),
        ("Generated at", scalar(&doc["generated_at"])),
        ("Events", scalar(&doc["summary"]["events"])),
        (
            "Seqs",
            format!(
                "{} to {}",
                scalar(&doc["summary"]["first_seq"]),
                scalar(&doc["summary"]["last_seq"])
            ),
        ),
    ];
    for (k, v) in rows {
        let y = w.y;
        w.text(MARGIN, y, 11.0, true, k);
        w.text_in(
            MARGIN + 110.0,
            y,
            CONTENT_W - 110.0,
            (11.0, false),
            Align::Left,
            &v,
        );
        w.y -= 20.0;
    }
    w.y -= 14.0;
    let (bg, fg, head) = if ok {
        ("#e6f4ea", "#1a7f37", "Evidence: VERIFIED")
    } else {
        ("#fdecea", "#c62828", "Evidence: NOT VERIFIED")
    };
    let detail = if ok {
        "The log's hash chain verified and every record of the date range verified.".to_string()
    } else {
        let f = scalar(&failure_text(ev));
        if f.is_empty() {
            "Records of the date range did not verify.".to_string()
        } else {
            format!("Verification failed. First failure: {f}")
        }
    };
    let lines = wrap(&detail, CONTENT_W - 20.0, 10.0, false);
    let box_h = 34.0 + 14.0 * lines.len() as f64;
    let top = w.y;
    w.rect(MARGIN, top - box_h, CONTENT_W, box_h, bg);
    w.fill(fg);
    w.text(MARGIN + 10.0, top - 20.0, 13.0, true, head);
    w.fill("#222222");
    for (i, l) in lines.iter().enumerate() {
        w.text(MARGIN + 10.0, top - 38.0 - 14.0 * i as f64, 10.0, false, l);
    }
    w.y = top - box_h - 30.0;
    let y = w.y;
    w.text(MARGIN, y, 12.0, true, "Seal");
    w.y -= 20.0;
    for (k, v) in [
        ("SHA-256", scalar(&doc["integrity"]["sha256"])),
        ("HMAC-SHA256", scalar(&doc["integrity"]["hmac_sha256"])),
    ] {
        let y = w.y;
        w.text(MARGIN, y, 9.0, true, k);
        w.text(MARGIN + 80.0, y, 8.5, false, &v);
        w.y -= 16.0;
    }
    let sig = &doc["integrity"]["ed25519"];
    if sig.is_object() {
        for (k, v) in [
            ("Ed25519 key", scalar(&sig["verifier_key"])),
            ("Ed25519 sig", scalar(&sig["signature"])),
        ] {
            let y = w.y;
            w.text(MARGIN, y, 9.0, true, k);
            let lines = wrap(&v, CONTENT_W - 80.0, 8.5, false);
            for (i, l) in lines.iter().enumerate() {
                w.text(MARGIN + 80.0, y - 12.0 * i as f64, 8.5, false, l);
            }
            w.y -= 16.0 + 12.0 * (lines.len() as f64 - 1.0);
        }
    }
    w.y -= 10.0;
    w.para(
        "The digest is SHA-256 over the canonical JSON of the report document without its \
         integrity member; the HMAC is keyed with the log's key. The document is attached to \
         this PDF (auditlog-report.json): check it with `auditlog verify-report` on this file.",
        8.5,
        false,
    );
}

fn body(w: &mut Writer, doc: &Value) {
    let s = &doc["summary"];
    w.heading("Summary", 16.0);
    w.table(
        &["", "value"],
        &[0.6, 0.4],
        &[Align::Left, Align::Right],
        &[
            vec!["events".into(), scalar(&s["events"])],
            vec![
                "seqs".into(),
                format!("{} to {}", scalar(&s["first_seq"]), scalar(&s["last_seq"])),
            ],
            vec![
                "events in no section".into(),
                scalar(&s["events_in_no_section"]),
            ],
        ],
    );
    w.heading("Events per day by type", 11.0);
    chart_per_day(w, &s["events_per_day"]);
    w.heading("Failed logins and denials per day", 11.0);
    chart_failures(w, &s["failures_per_day"]);
    w.heading("Severity", 11.0);
    chart_severity(w, &s["by_severity"]);
    w.map_table("event type", &s["by_event_type"]);
    w.map_table("severity", &s["by_severity"]);
    w.map_table("status", &s["by_status"]);
    if let Some(c) = doc["controls"]["controls"].as_array() {
        w.heading(
            &format!("Controls ({})", scalar(&doc["controls"]["framework"])),
            16.0,
        );
        let rows: Vec<Vec<String>> = c
            .iter()
            .map(|c| {
                let secs: Vec<String> = c["evidenced_by"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(scalar)
                    .collect();
                vec![
                    scalar(&c["id"]),
                    scalar(&c["title"]),
                    secs.join(", "),
                    scalar(&c["events"]),
                ]
            })
            .collect();
        w.table(
            &["control", "title", "evidenced by", "events"],
            &[0.14, 0.44, 0.30, 0.12],
            &[Align::Left, Align::Left, Align::Left, Align::Right],
            &rows,
        );
    }
    for (name, sec) in doc["sections"].as_object().into_iter().flatten() {
        let title = name.replace('_', " ");
        w.heading(&title, 16.0);
        w.para(&format!("events: {}", scalar(&sec["events"])), 10.0, true);
        w.y -= 4.0;
        w.map_table("event type", &sec["by_event_type"]);
        for k in ["by_action", "by_status", "by_severity"] {
            w.map_table(&k[3..], &sec[k]);
        }
        w.top_table("top actors", &sec["top_actors"]);
        w.top_table("top source IPs", &sec["top_source_ips"]);
        for list in ["changes", "incidents"] {
            if sec[list].is_array() {
                w.heading(
                    &format!(
                        "{list} ({} more not listed)",
                        scalar(&sec[format!("{list}_omitted")])
                    ),
                    11.0,
                );
                w.events_table(&sec[list]);
            }
        }
    }
    if doc["user"].is_object() {
        let u = &doc["user"];
        w.heading(&format!("Timeline of {}", scalar(&u["user_id"])), 16.0);
        w.para(
            &format!(
                "{} events, first {}, last {}",
                scalar(&u["events"]),
                scalar(&u["first_seen"]),
                scalar(&u["last_seen"])
            ),
            10.0,
            false,
        );
        w.events_table(&u["timeline"]);
    }
    let ev = &doc["evidence"];
    let cv = &ev["chain_verification"];
    let rr = &ev["range_records"];
    w.heading("Evidence", 16.0);
    let rows = vec![
        vec![
            "chain verification".into(),
            if cv["ok"].as_bool() == Some(true) {
                "ok".into()
            } else {
                "FAILED".into()
            },
        ],
        vec!["records verified in the log".into(), scalar(&cv["records"])],
        vec![
            "first failure".into(),
            scalar(&failure_text(ev)).if_empty_then("none"),
        ],
        vec![
            "records of the range verified / unverified / unreadable".into(),
            format!(
                "{} / {} / {}",
                scalar(&rr["verified"]),
                scalar(&rr["unverified"]),
                scalar(&rr["unreadable"])
            ),
        ],
        vec![
            "seqs covered".into(),
            format!(
                "{} to {}",
                scalar(&ev["seq_range"]["first_seq"]),
                scalar(&ev["seq_range"]["last_seq"])
            ),
        ],
        vec![
            "unverified seqs".into(),
            rr["unverified_seqs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(scalar)
                .collect::<Vec<_>>()
                .join(", ")
                .if_empty_then("none"),
        ],
        vec!["retention runs".into(), scalar(&ev["retention"]["runs"])],
        vec![
            "legal holds in force".into(),
            ev["retention"]["holds"]
                .as_array()
                .map_or(0, Vec::len)
                .to_string(),
        ],
    ];
    w.table(
        &["", ""],
        &[0.45, 0.55],
        &[Align::Left, Align::Right],
        &rows,
    );
    for (k, v) in [
        ("SHA-256", scalar(&doc["integrity"]["sha256"])),
        ("HMAC-SHA256", scalar(&doc["integrity"]["hmac_sha256"])),
    ] {
        w.need(14.0);
        let y = w.y;
        w.text(MARGIN, y, 9.0, true, k);
        w.text(MARGIN + 80.0, y, 8.5, false, &v);
        w.y -= 14.0;
    }
    // With include_evidence: the events themselves, each with its record's MAC result.
    if let Some(events) = ev["events"].as_array() {
        let omitted = ev["events_omitted"].as_u64().unwrap_or(0);
        let more = if omitted > 0 {
            format!(", {omitted} more not included")
        } else {
            String::new()
        };
        w.heading(
            &format!("Events of the range ({}{more})", events.len()),
            11.0,
        );
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    scalar(&e["seq"]),
                    scalar(&e["timestamp"]),
                    scalar(&e["event_type"]),
                    scalar(&e["action"]),
                    scalar(&e["status"]),
                    scalar(&e["severity"]),
                    scalar(&e["actor"]["user_id"]),
                    scalar(&e["actor"]["ip_address"]),
                    if e["verification"]["verified"] == true {
                        "verified".into()
                    } else {
                        "NOT VERIFIED".into()
                    },
                ]
            })
            .collect();
        w.table_sized(
            &[
                "seq",
                "time",
                "type",
                "action",
                "status",
                "severity",
                "actor",
                "ip",
                "record MAC",
            ],
            &[0.055, 0.175, 0.16, 0.14, 0.075, 0.07, 0.095, 0.125, 0.105],
            &[
                Align::Right,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
                Align::Left,
            ],
            &rows,
            7.5,
        );
    }
}

trait IfEmptyThen {
    fn if_empty_then(self, alt: &str) -> String;
}

impl IfEmptyThen for String {
    fn if_empty_then(self, alt: &str) -> String {
        if self.is_empty() {
            alt.to_string()
        } else {
            self
        }
    }
}

/// The PDF file of a report document.
pub(crate) fn pdf(doc: &Value) -> Vec<u8> {
    let mut w = Writer::new();
    cover(&mut w, doc);
    w.new_page();
    body(&mut w, doc);
    let n = w.pages.len();
    for (i, p) in w.pages.iter_mut().enumerate() {
        let label = format!("Page {} of {n}", i + 1);
        let x = PAGE_W - MARGIN - text_width(&label, 8.0, false);
        let _ = writeln!(
            p,
            "0.45 0.45 0.45 rg BT /F1 8 Tf {x:.2} 30 Td {} Tj ET",
            pdf_string(&label)
        );
        let t = truncate(&scalar(&doc["title"]), 300.0, 8.0, false);
        let _ = writeln!(p, "BT /F1 8 Tf {MARGIN} 30 Td {} Tj ET", pdf_string(&t));
    }
    let document = serde_json::to_vec(doc).expect("report serializes");
    assemble(&w.pages, &scalar(&doc["title"]), &document)
}

/// Objects: 1 catalog, 2 page tree, 3 and 4 the fonts, 5 the info dictionary, then a page
/// and its content stream for each page.
/// File name of the JSON document embedded in a PDF report.
const EMBED_NAME: &str = "auditlog-report.json";

fn assemble(pages: &[String], title: &str, document: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    // Pages and contents, then the embedded JSON document and its file specification.
    let (file_id, spec_id) = (6 + 2 * pages.len(), 7 + 2 * pages.len());
    let total = 7 + 2 * pages.len();
    let mut offsets = vec![0usize; total + 1];
    let mut obj = |out: &mut Vec<u8>, id: usize, body: &[u8]| {
        offsets[id] = out.len();
        out.extend_from_slice(format!("{id} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };
    obj(
        &mut out,
        1,
        format!(
            "<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles << /Names \
             [({EMBED_NAME}) {spec_id} 0 R] >> >> /AF [{spec_id} 0 R] >>"
        )
        .as_bytes(),
    );
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 6 + 2 * i))
        .collect();
    obj(
        &mut out,
        2,
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        )
        .as_bytes(),
    );
    for (id, name) in [(3, "Helvetica"), (4, "Helvetica-Bold")] {
        obj(
            &mut out,
            id,
            format!(
                "<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>"
            )
            .as_bytes(),
        );
    }
    obj(
        &mut out,
        5,
        format!(
            "<< /Title {} /Producer (auditlog {}) >>",
            pdf_string(title),
            env!("CARGO_PKG_VERSION")
        )
        .as_bytes(),
    );
    for (i, content) in pages.iter().enumerate() {
        let (pid, cid) = (6 + 2 * i, 7 + 2 * i);
        obj(
            &mut out,
            pid,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] \
                 /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {cid} 0 R >>"
            )
            .as_bytes(),
        );
        let mut s = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        s.extend_from_slice(content.as_bytes());
        s.extend_from_slice(b"\nendstream");
        obj(&mut out, cid, &s);
    }
    let mut f = format!("{PDF_EMBED_DICT}{} >>\nstream\n", document.len()).into_bytes();
    f.extend_from_slice(document);
    f.extend_from_slice(b"\nendstream");
    obj(&mut out, file_id, &f);
    obj(
        &mut out,
        spec_id,
        format!(
            "<< /Type /Filespec /F ({EMBED_NAME}) /UF ({EMBED_NAME}) /EF << /F {file_id} 0 R >> \
             /AFRelationship /Source /Desc (The report document; auditlog verify-report checks it) >>"
        )
        .as_bytes(),
    );
    let xref = out.len();
    let mut x = format!("xref\n0 {}\n0000000000 65535 f \n", total + 1);
    for off in &offsets[1..] {
        let _ = writeln!(x, "{off:010} 00000 n ");
    }
    let _ = write!(
        x,
        "trailer\n<< /Size {} /Root 1 0 R /Info 5 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        total + 1
    );
    out.extend_from_slice(x.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_encoded() {
        assert_eq!(pdf_string("a(b)c\\d"), "(a\\(b\\)c\\\\d)");
        assert_eq!(
            pdf_string("caf\u{e9} \u{2014} \u{4e2d}"),
            "(caf\\351 \\227 ?)"
        );
        assert_eq!(pdf_string("tab\there"), "(tab?here)");
    }

    #[test]
    fn widths_come_from_the_afm() {
        // "Hello": H 722 e 556 l 222 l 222 o 556 = 2278.
        assert!((text_width("Hello", 10.0, false) - 22.78).abs() < 1e-9);
        // Bold: H 722 e 556 l 278 l 278 o 611 = 2445.
        assert!((text_width("Hello", 10.0, true) - 24.45).abs() < 1e-9);
    }

    #[test]
    fn truncation_and_wrapping_fit_the_width() {
        let s = "a rather long resource identifier that cannot fit";
        let t = truncate(s, 60.0, 9.0, false);
        assert!(
            t.ends_with("...") && text_width(&t, 9.0, false) <= 60.0,
            "{t}"
        );
        assert_eq!(truncate("short", 60.0, 9.0, false), "short");
        let lines = wrap(s, 80.0, 9.0, false);
        assert!(lines.len() > 1);
        for l in &lines {
            assert!(text_width(l, 9.0, false) <= 80.0, "{l}");
        }
        assert_eq!(lines.join(" "), s);
        let long = "x".repeat(100);
        let lines = wrap(&long, 50.0, 9.0, false);
        assert_eq!(lines.concat(), long);
    }

    #[test]
    fn the_xref_points_at_every_object() {
        let doc = serde_json::json!({"title": "T (x)", "summary": {"events": 3}});
        let b = pdf(&doc);
        let text = String::from_utf8_lossy(&b);
        let sx: usize = text
            .rsplit("startxref\n")
            .next()
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(b[sx..].starts_with(b"xref\n"));
        let table = std::str::from_utf8(&b[sx..]).unwrap();
        let n: usize = table.lines().nth(1).unwrap()[2..].parse().unwrap();
        for (id, line) in table.lines().skip(3).take(n - 1).enumerate() {
            let off: usize = line[..10].parse().unwrap();
            let head = format!("{} 0 obj\n", id + 1);
            assert!(b[off..].starts_with(head.as_bytes()), "object {}", id + 1);
        }
        let count: usize = text.split("/Count ").nth(1).unwrap()[..3]
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap();
        assert!(count >= 2, "a cover and at least one page");
        for i in 1..=count {
            assert!(
                text.contains(&format!("(Page {i} of {count})")),
                "footer {i}"
            );
        }
        assert!(!text.contains(&format!("(Page {} of", count + 1)));
    }
}
