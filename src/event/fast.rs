//! A single-pass parser of the seed's event shape, for the JSON ingest path.
//!
//! [`parse`] reads the common shape of a line: the seed's fields in any order, strings
//! borrowed from the line (escapes decoded only where a string has one), `details` scanned
//! once for its end, its syntax, its depth ([`MAX_DETAILS_DEPTH`]) and its numbers' range,
//! and the timestamp's RFC 3339 read by hand when it is in the canonical
//! `YYYY-MM-DDTHH:MM:SS[.fraction]Z` form.
//!
//! It answers `None` whenever anything is unusual, and for every error: then the caller runs
//! the serde parser, which has the last word (on what is accepted, and on the error, naming
//! the field, line and column). So this parser decides nothing on its own: when it returns
//! an event, the serde parser would have returned the same event and `check` would have
//! accepted its `details` (tests/json_fast_parser.rs checks this against serde_json on valid,
//! invalid and generated input).

use std::borrow::Cow;

use super::{ActorRef, EventRef, ResourceRef, Severity, MAX_DETAILS_DEPTH};

/// The event on `line`, or `None` when the serde parser must decide.
pub(crate) fn parse(line: &[u8]) -> Option<EventRef<'_>> {
    // Valid UTF-8 throughout: every slice taken between ASCII delimiters is then a `&str`.
    let s = std::str::from_utf8(line).ok()?;
    let mut p = P {
        s,
        b: s.as_bytes(),
        i: 0,
        newline: false,
    };
    let ev = p.event()?;
    p.ws();
    (p.i == p.b.len()).then_some(ev)
}

/// Bytes that end the plain run of a string: the closing quote, an escape, a control
/// character (which JSON does not allow raw in a string).
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

struct P<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    /// A newline or carriage return was skipped as whitespace (the `details` text must then
    /// be compacted, which the serde path does).
    newline: bool,
}

/// Which top-level fields were seen (a second occurrence is serde's "duplicate field").
#[derive(Default)]
struct Seen(u16);

impl Seen {
    fn first(&mut self, bit: u16) -> Option<()> {
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}

impl<'a> P<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            match c {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.newline = true,
                _ => return,
            }
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// `,` (then another member follows: true) or `close` (false).
    #[inline]
    fn next_member(&mut self, close: u8) -> Option<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(true)
            }
            c if c == close => {
                self.i += 1;
                Some(false)
            }
            _ => None,
        }
    }

    /// Index of the first stop byte at or after `self.i`: eight bytes at a time, then byte by
    /// byte for the tail.
    #[inline]
    fn plain_run(&self) -> usize {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH: u64 = 0x8080_8080_8080_8080;
        let b = self.b;
        let mut j = self.i;
        while let Some(chunk) = b.get(j..j + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            let (q, bs) = (w ^ (ONES * u64::from(b'"')), w ^ (ONES * u64::from(b'\\')));
            // A byte's high bit is set where it is 0 (in `q`, `bs`) or below 0x20 (in `w`).
            // A borrow can mark a byte above a true match, never below one: the lowest mark
            // is the first stop byte.
            let m = ((q.wrapping_sub(ONES) & !q)
                | (bs.wrapping_sub(ONES) & !bs)
                | (w.wrapping_sub(ONES * 0x20) & !w))
                & HIGH;
            if m != 0 {
                return j + (m.trailing_zeros() / 8) as usize;
            }
            j += 8;
        }
        while j < b.len() && !STOP[b[j] as usize] {
            j += 1;
        }
        j
    }

    /// An object key without escapes, followed by its `:`.
    fn key(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.plain_run();
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        self.eat(b':')?;
        Some(&self.b[start..end])
    }

    /// A string value, decoded as serde_json decodes one into a `str`.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.plain_run();
        match self.b.get(end)? {
            b'"' => {
                self.i = end + 1;
                Some(Cow::Borrowed(&self.s[start..end]))
            }
            b'\\' => {
                self.i = end;
                self.escaped(start).map(Cow::Owned)
            }
            _ => None,
        }
    }

    /// The rest of a string from its first escape (at `self.i`), `start` its first byte.
    fn escaped(&mut self, start: usize) -> Option<String> {
        let mut out = String::with_capacity(self.i - start + 16);
        out.push_str(&self.s[start..self.i]);
        loop {
            let end = self.plain_run();
            out.push_str(&self.s[self.i..end]);
            self.i = end;
            match *self.b.get(end)? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    out.push(match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    });
                }
                _ => return None,
            }
        }
    }

    /// Four hex digits at `self.i`.
    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let mut n = 0u32;
        for &c in h {
            n = n << 4 | (c as char).to_digit(16)?;
        }
        self.i += 4;
        Some(n)
    }

    /// The character of a `\u` escape (its `\u` consumed); a surrogate must be the leading
    /// half of a pair written as two escapes (anything else is left to serde's error).
    fn unicode_escape(&mut self) -> Option<char> {
        let n = self.hex4()?;
        if !(0xD800..=0xDFFF).contains(&n) {
            return char::from_u32(n);
        }
        if n > 0xDBFF || self.b.get(self.i..self.i + 2)? != b"\\u" {
            return None;
        }
        self.i += 2;
        let n2 = self.hex4()?;
        if !(0xDC00..=0xDFFF).contains(&n2) {
            return None;
        }
        char::from_u32((((n - 0xD800) << 10) | (n2 - 0xDC00)) + 0x1_0000)
    }

    /// `null` (None) or a string.
    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.string().map(Some)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.b.get(self.i..self.i + word.len())? != word {
            return None;
        }
        self.i += word.len();
        Some(())
    }

    /// Skips a string, checking it as serde_json checks a string it ignores: no raw control
    /// characters, only JSON's escapes (any four hex digits after `\u`).
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            self.i = self.plain_run();
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            self.hex4()?;
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// A number in JSON's grammar. As `check_depth` requires of `details`, one with an
    /// exponent or more than 17 characters must fit an f64.
    fn number(&mut self) -> Option<()> {
        let b = self.b;
        let start = self.i;
        let mut i = self.i;
        let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                while digit(i) {
                    i += 1;
                }
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digit(i) {
                return None;
            }
            while digit(i) {
                i += 1;
            }
        }
        let mut exp = false;
        if matches!(b.get(i), Some(b'e' | b'E')) {
            exp = true;
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            if !digit(i) {
                return None;
            }
            while digit(i) {
                i += 1;
            }
        }
        if (exp || i - start > 17) && !self.s[start..i].parse::<f64>().is_ok_and(f64::is_finite) {
            return None;
        }
        self.i = i;
        Some(())
    }

    /// Skips any JSON value nested in `depth` containers, refusing (as `check_depth` does)
    /// nesting deeper than [`MAX_DETAILS_DEPTH`].
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' => {
                if depth >= MAX_DETAILS_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.peek()? == b'}' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    if self.peek()? != b'"' {
                        return None;
                    }
                    self.skip_string()?;
                    self.eat(b':')?;
                    self.skip_value(depth + 1)?;
                    if !self.next_member(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DETAILS_DEPTH {
                    return None;
                }
                self.i += 1;
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if !self.next_member(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    /// `details`: `null` or an object on one line, as its text.
    fn details(&mut self) -> Option<Option<&'a str>> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Some(None)
            }
            b'{' => {
                let start = self.i;
                let newline = std::mem::replace(&mut self.newline, false);
                self.skip_value(0)?;
                if self.newline {
                    return None;
                }
                self.newline = newline;
                Some(Some(&self.s[start..self.i]))
            }
            _ => None,
        }
    }

    /// Members of an object whose `{` is next, `member` called with each key (the value is
    /// next); an empty object is allowed.
    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let k = self.key()?;
            member(self, k)?;
            if !self.next_member(b'}')? {
                return Some(());
            }
        }
    }

    fn actor(&mut self) -> Option<ActorRef<'a>> {
        let mut a = ActorRef::default();
        let mut seen = Seen::default();
        self.members(|p, k| {
            match k {
                b"user_id" => {
                    seen.first(1)?;
                    a.user_id = p.opt_string()?;
                }
                b"email" => {
                    seen.first(2)?;
                    a.email = p.opt_string()?;
                }
                b"ip_address" => {
                    seen.first(4)?;
                    a.ip_address = match p.opt_string()? {
                        None => None,
                        Some(t) => Some(t.parse().ok()?),
                    };
                }
                // Other keys are ignored (`ActorRef` takes unknown fields), their values
                // checked as JSON.
                _ => p.skip_value(1)?,
            }
            Some(())
        })?;
        Some(a)
    }

    fn resource(&mut self) -> Option<Option<ResourceRef<'a>>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        let (mut kind, mut id) = (None, None);
        let mut seen = Seen::default();
        self.members(|p, k| {
            match k {
                b"type" => {
                    seen.first(1)?;
                    kind = Some(p.string()?);
                }
                b"id" => {
                    seen.first(2)?;
                    id = p.opt_string()?;
                }
                _ => p.skip_value(1)?,
            }
            Some(())
        })?;
        Some(Some(ResourceRef { kind: kind?, id }))
    }

    fn severity(&mut self) -> Option<Severity> {
        let s = self.string()?;
        Severity::ALL.into_iter().find(|x| x.as_str() == s)
    }

    fn event(&mut self) -> Option<EventRef<'a>> {
        let mut ev = EventRef {
            event_id: None,
            timestamp: None,
            event_type: Cow::Borrowed(""),
            action: Cow::Borrowed(""),
            status: None,
            severity: Severity::default(),
            actor: ActorRef::default(),
            resource: None,
            details: None,
            details_checked: true,
        };
        let mut seen = Seen::default();
        self.members(|p, k| {
            match k {
                b"event_id" => {
                    seen.first(1)?;
                    ev.event_id = p.opt_string()?;
                }
                b"timestamp" => {
                    seen.first(2)?;
                    ev.timestamp = p.opt_string()?;
                }
                b"event_type" => {
                    seen.first(4)?;
                    ev.event_type = p.string()?;
                }
                b"action" => {
                    seen.first(8)?;
                    ev.action = p.string()?;
                }
                b"status" => {
                    seen.first(16)?;
                    ev.status = p.opt_string()?;
                }
                b"severity" => {
                    seen.first(32)?;
                    ev.severity = p.severity()?;
                }
                b"actor" => {
                    seen.first(64)?;
                    ev.actor = p.actor()?;
                }
                b"resource" => {
                    seen.first(128)?;
                    ev.resource = p.resource()?;
                }
                b"details" => {
                    seen.first(256)?;
                    ev.details = p.details()?;
                }
                // `Event` takes no unknown field.
                _ => return None,
            }
            Some(())
        })?;
        // event_type and action are required.
        (seen.0 & 12 == 12).then_some(ev)
    }
}

/// UTC nanoseconds of a timestamp in the canonical form `YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`,
/// or `None` for any other spelling (and for an invalid date or time, a leap second, or a
/// time outside the i64 range): chrono then parses it as before.
pub(crate) fn canonical_timestamp(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || *b.last()? != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r)?.iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut nanos = 0u32;
    match b.len() - 20 {
        0 => {}
        n @ 2..=10 if b[19] == b'.' => {
            let digits = n - 1;
            nanos = num(20..20 + digits)? * 10u32.pow(9 - digits as u32);
        }
        _ => return None,
    }
    if sec > 59 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(y as i32, mo, d)?;
    date.and_hms_nano_opt(h, mi, sec, nanos)?
        .and_utc()
        .timestamp_nanos_opt()
}

/// The single-pass parser against serde_json (the reference): wherever it returns an event,
/// the reference returns the same fields and `check` the same timestamp and details; where
/// the reference refuses a line, it declines. Valid lines of the seed's shape must take the
/// single-pass path.
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Asserts the two parsers agree on `line`; returns whether the single-pass one took it.
    fn agree(line: &[u8]) -> bool {
        let reference = EventRef::parse_reference(line);
        let Some(fast) = parse(line) else {
            return false;
        };
        let text = String::from_utf8_lossy(line);
        let reference = match reference {
            Ok(r) => r,
            Err(e) => panic!("single-pass accepted what serde refuses ({e}): {text}"),
        };
        assert_eq!(fast.event_id, reference.event_id, "{text}");
        assert_eq!(fast.timestamp, reference.timestamp, "{text}");
        assert_eq!(fast.event_type, reference.event_type, "{text}");
        assert_eq!(fast.action, reference.action, "{text}");
        assert_eq!(fast.status, reference.status, "{text}");
        assert_eq!(fast.severity, reference.severity, "{text}");
        assert_eq!(fast.actor, reference.actor, "{text}");
        assert_eq!(fast.resource, reference.resource, "{text}");
        assert_eq!(fast.details, reference.details, "{text}");
        let (mut s1, mut s2) = (String::new(), String::new());
        let (got, want) = (fast.check(&mut s1), reference.check(&mut s2));
        match (got, want) {
            (Ok(g), Ok(w)) => assert_eq!(g, w, "{text}"),
            (Err(g), Err(w)) => assert_eq!(g.to_string(), w.to_string(), "{text}"),
            (g, w) => panic!("check differs: single-pass {g:?}, serde {w:?}: {text}"),
        }
        true
    }

    const SEED: &str = r#"{"event_id":"evt_001","timestamp":"2024-01-15T10:30:00.123Z","event_type":"authentication","action":"user_login","status":"failed","severity":"medium","actor":{"user_id":"user-alice-001","email":"alice@company.com","ip_address":"203.0.113.42"},"resource":{"type":"session","id":"s-1"},"details":{"auth_method":"password","failure_reason":"invalid_password","attempts_count":3,"n":[1,-2.5,3e2,{"x":null,"y":true,"z":false}]}}"#;

    #[test]
    fn plain_runs_stop_where_the_byte_table_stops() {
        // Every byte value at every position of a 0..=20-byte run, with plain bytes around.
        for len in 0..=20usize {
            for at in 0..len.max(1) {
                for v in 0..=255u8 {
                    let mut line = vec![b'a'; len];
                    if at < len {
                        line[at] = v;
                    }
                    let Ok(text) = std::str::from_utf8(&line) else {
                        continue;
                    };
                    for start in 0..=len.min(3) {
                        let p = P {
                            b: text.as_bytes(),
                            s: text,
                            i: start,
                            newline: false,
                        };
                        let want = (start..len)
                            .find(|&k| STOP[line[k] as usize])
                            .unwrap_or(len);
                        assert_eq!(
                            p.plain_run(),
                            want,
                            "len {len} byte {v:#x} at {at} from {start}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn common_shapes_take_the_single_pass_path() {
        let nested = format!(
            r#"{{"event_type":"a","action":"b","details":{{"d":{}1{}}}}}"#,
            "[".repeat(63),
            "]".repeat(63)
        );
        for line in [
            SEED,
            r#"{"event_type":"a","action":"b"}"#,
            r#" { "action" : "b" , "event_type" : "a" , "details" : { } } "#,
            r#"{"event_type":"a\"q\\b\/\n\u00e9\ud83d\ude00","action":"b","status":null,"event_id":null,"timestamp":null,"resource":null,"details":null}"#,
            r#"{"event_type":"a","action":"b","actor":{"ip_address":"::1","extra":[1,{"k":"\ud800"}]},"resource":{"id":null,"type":"t","more":1}}"#,
            r#"{"event_type":"a","action":"b","details":{"big":123456789012345678901234567890,"e":1E+308,"s":"\u0000\t"}}"#,
            r#"{"event_type":"a","action":"b","timestamp":"2262-04-11T23:47:16.854775807Z"}"#,
            r#"{"event_type":"a","action":"b","timestamp":"2024-02-29T00:00:00Z"}"#,
            r#"{"event_type":"a","action":"b","timestamp":"2024-01-15T10:30:00+02:00"}"#,
            r#"{"event_type":"a","action":"b","event_id":"","status":""}"#,
            &nested,
        ] {
            assert!(agree(line.as_bytes()), "declined: {line}");
        }
    }

    #[test]
    fn what_serde_refuses_or_check_rejects_is_left_to_serde() {
        let deep = format!(
            r#"{{"event_type":"a","action":"b","details":{{"d":{}1{}}}}}"#,
            "[".repeat(64),
            "]".repeat(64)
        );
        let oversized = format!(
            r#"{{"event_type":"a","action":"b","details":{{"blob":"{}"}}}}"#,
            "y".repeat(100 << 10)
        );
        for line in [
            "",
            "{not json",
            "[]",
            r#"["id",null,"a","b"]"#,
            "null",
            r#"{"event_type":"a"}"#,
            r#"{"action":"b"}"#,
            r#"{"event_type":"a","action":"b","action":"c"}"#,
            r#"{"event_type":"a","action":"b","actor":{"email":"x","email":"y"}}"#,
            r#"{"event_type":"a","action":"b","resource":{"type":"x","type":"y"}}"#,
            r#"{"event_type":"a","action":"b","resource":{"id":"x"}}"#,
            r#"{"event_type":"a","action":"b","extra":1}"#,
            r#"{"event_type":"a","action":"b"} x"#,
            r#"{"event_type":"a","action":"b"}}"#,
            r#"{"event_type":"a","action":"b",}"#,
            r#"{"event_type":"a\x","action":"b"}"#,
            r#"{"event_type":"a\ud800","action":"b"}"#,
            r#"{"event_type":"a\udc00x","action":"b"}"#,
            r#"{"event_type":"a\ud800\u0041","action":"b"}"#,
            r#"{"event_type":"a\u12","action":"b"}"#,
            "{\"event_type\":\"a\u{1}\",\"action\":\"b\"}",
            r#"{"event_type":"a","action":"b","severity":"urgent"}"#,
            r#"{"event_type":"a","action":"b","severity":"Info"}"#,
            r#"{"event_type":"a","action":"b","severity":null}"#,
            r#"{"event_type":null,"action":"b"}"#,
            r#"{"event_type":1,"action":"b"}"#,
            r#"{"event_type":"a","action":"b","actor":null}"#,
            r#"{"event_type":"a","action":"b","actor":{"ip_address":"999.1.1.1"}}"#,
            r#"{"event_type":"a","action":"b","details":[1]}"#,
            r#"{"event_type":"a","action":"b","details":"text"}"#,
            r#"{"event_type":"a","action":"b","details":{"n":1e400}}"#,
            r#"{"event_type":"a","action":"b","details":{"n":-1e400}}"#,
            r#"{"event_type":"a","action":"b","details":{"n":01}}"#,
            r#"{"event_type":"a","action":"b","details":{"n":1.}}"#,
            r#"{"event_type":"a","action":"b","details":{"n":.5}}"#,
            r#"{"event_type":"a","action":"b","details":{"n":+1}}"#,
            r#"{"event_type":"a","action":"b","details":{"n":1e}}"#,
            r#"{"event_type":"a","action":"b","details":{"s":"\q"}}"#,
            r#"{"event_type":"a","action":"b","details":{"a":1,}}"#,
            r#"{"event_type":"a","action":"b","details":{"a" 1}}"#,
            r#"{"event_type":"a","action":"b","details":{"a":tru}}"#,
            "{\"event_type\":\"a\",\"action\":\"b\",\"details\":{\"a\":\n1}}",
            r#"{"event_type":"a","action":"b","timestamp":"2024-02-30T00:00:00Z"}"#,
            r#"{"event_type":"a","action":"b","timestamp":"2300-01-01T00:00:00Z"}"#,
            r#"{"event_type":"a","action":"b","timestamp":"yesterday"}"#,
            r#"{"event_type":"a","action":"b","event_id":""}"#,
            &deep,
            &oversized,
        ] {
            agree(line.as_bytes());
        }
        // Invalid UTF-8 is left to serde too (which refuses it outside an ignored value).
        assert!(!agree(b"{\"event_type\":\"a\xff\",\"action\":\"b\"}"));
        assert!(!agree(deep.as_bytes()));
        assert!(!agree(b"{\"event_type\":\"a\",\"action\":\"b\"} x"));
    }

    #[test]
    fn canonical_timestamps_read_as_chrono_reads_them() {
        for t in [
            "2024-01-15T10:30:00.123Z",
            "2024-01-15T10:30:00Z",
            "2024-01-15T10:30:00.1Z",
            "2024-01-15T10:30:00.123456789Z",
            "1677-09-21T00:12:43.145224192Z",
            "2000-02-29T23:59:59.999999999Z",
        ] {
            let dt: chrono::DateTime<chrono::Utc> = t.parse().unwrap();
            assert_eq!(canonical_timestamp(t), dt.timestamp_nanos_opt(), "{t}");
        }
        for t in [
            "2024-01-15T10:30:60Z",
            "2024-01-15T24:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-15T10:30:00.Z",
            "2024-01-15T10:30:00.1234567890Z",
            "2024-01-15t10:30:00Z",
            "2024-01-15 10:30:00Z",
            "2024-01-15T10:30:00z",
            "2024-01-15T10:30:00+00:00",
            "1677-09-21T00:12:43.145224191Z",
            "+2024-01-15T10:30:00Z",
        ] {
            assert_eq!(canonical_timestamp(t), None, "{t}");
        }
    }

    /// A JSON string literal of `s`, with some characters escaped when `esc` says so.
    fn quote(s: &str, esc: &[bool]) -> String {
        let mut out = String::from('"');
        for (i, c) in s.chars().enumerate() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c if esc.get(i).copied().unwrap_or(false) => {
                    let mut buf = [0u16; 2];
                    for u in c.encode_utf16(&mut buf) {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn json_value(depth: u32) -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            "-?[0-9]{1,25}(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
            ("\\PC{0,8}", prop::collection::vec(any::<bool>(), 8)).prop_map(|(s, e)| quote(&s, &e)),
        ];
        leaf.prop_recursive(depth, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z]{1,3}", inner), 0..4).prop_map(|v| {
                    let m: Vec<String> = v.iter().map(|(k, v)| format!("\"{k}\" : {v}")).collect();
                    format!("{{{}}}", m.join(" ,"))
                }),
            ]
        })
    }

    /// Lines of the seed's shape: fields in any order, some absent or null, escapes here and
    /// there, whitespace between tokens.
    fn event_line() -> impl Strategy<Value = String> {
        let s = || ("\\PC{0,12}", prop::collection::vec(any::<bool>(), 12));
        let opt = |p: &'static str| {
            prop_oneof![
                Just(None),
                Just(Some("null".to_string())),
                p.prop_map(|v| Some(format!("\"{v}\"")))
            ]
        };
        (
            (s(), s(), s(), opt("[a-z0-9_]{0,20}")),
            (
                opt("20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-4]):[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,10})?(Z|z|\\+01:00)"),
                prop_oneof![Just(None), "(info|low|medium|high|critical|Info|bad)".prop_map(Some)],
                prop_oneof![Just(None), Just(Some("null".to_string())), "(10\\.0\\.0\\.[0-9]{1,3}|::1|fe80::[0-9a-f]{1,4}|x)".prop_map(|v| Some(format!("\"{v}\"")))],
                prop_oneof![Just(None), Just(Some("null".to_string())), json_value(3).prop_map(Some)],
                any::<u64>(),
                prop::collection::vec(prop_oneof![Just(""), Just(" "), Just("\t")], 40),
            ),
        )
            .prop_map(|((ty, action, email, id), (ts, sev, ip, details, order, gaps))| {
                let mut fields = vec![
                    format!("\"event_type\":{}", quote(&ty.0, &ty.1)),
                    format!("\"action\":{}", quote(&action.0, &action.1)),
                    format!(
                        "\"actor\":{{\"email\":{}{}}}",
                        quote(&email.0, &email.1),
                        ip.map(|v| format!(",\"ip_address\":{v}")).unwrap_or_default()
                    ),
                ];
                if let Some(v) = id {
                    fields.push(format!("\"event_id\":{v}"));
                }
                if let Some(v) = ts {
                    fields.push(format!("\"timestamp\":{v}"));
                }
                if let Some(v) = sev {
                    fields.push(format!("\"severity\":\"{v}\""));
                }
                if let Some(v) = details {
                    fields.push(format!("\"details\":{v}"));
                }
                let mut o = order;
                for i in (1..fields.len()).rev() {
                    fields.swap(i, (o % (i as u64 + 1)) as usize);
                    o /= i as u64 + 1;
                }
                let mut line = String::from("{");
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    line.push_str(gaps[i % gaps.len()]);
                    line.push_str(f);
                    line.push_str(gaps[(i + 7) % gaps.len()]);
                }
                line.push('}');
                line
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn agrees_with_serde_on_generated_lines(line in event_line()) {
            agree(line.as_bytes());
        }

        /// Where the hand-read timestamp answers, it is chrono's.
        #[test]
        fn timestamps_agree_with_chrono(t in "(1[6-9]|2[0-3])[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,11})?Z") {
            let want = t.parse::<chrono::DateTime<chrono::Utc>>().ok().and_then(|d| d.timestamp_nanos_opt());
            if let Some(ns) = canonical_timestamp(&t) {
                prop_assert_eq!(Some(ns), want, "{}", t);
            }
        }

        /// Every edit of a valid line: one byte replaced, inserted or removed.
        #[test]
        fn agrees_with_serde_on_mutated_lines(
            line in event_line(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(&b"{}[]\",:\\u0e9-+. nulltrueZ\x01\xff"[..])), 1..4),
        ) {
            let mut b = line.into_bytes();
            for (at, op, c) in edits {
                let i = at.index(b.len() + 1);
                match op {
                    0 if i < b.len() => b[i] = c,
                    1 => b.insert(i, c),
                    _ if i < b.len() => { b.remove(i); }
                    _ => {}
                }
            }
            agree(&b);
        }
    }

    #[test]
    fn generated_valid_lines_mostly_take_the_single_pass_path() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let (mut fast, mut valid) = (0, 0);
        for _ in 0..2000 {
            let line = event_line().new_tree(&mut runner).unwrap().current();
            let mut scratch = String::new();
            let ok = EventRef::parse_reference(line.as_bytes())
                .is_ok_and(|e| e.check(&mut scratch).is_ok());
            if ok {
                valid += 1;
                fast += usize::from(agree(line.as_bytes()));
            }
        }
        assert!(valid > 200, "{valid} valid lines of 2000");
        assert!(
            fast * 10 >= valid * 9,
            "{fast} of {valid} valid lines took the single-pass path"
        );
    }
}
