//! The report's digest and MAC: SHA-256 over a canonical JSON of the document without its
//! `integrity` member, and HMAC-SHA256 of that digest under the log's key.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::chain::{ct_eq, hex, unhex, Chain};
use crate::error::{Error, Result};
use crate::HmacKey;

/// Domain of the report MAC (no other MAC of the crate starts with it).
const DOMAIN: &[u8] = b"auditlog/report/v1\0";
/// Id of an HTML report's embedded JSON document.
pub const EMBED_ID: &str = "auditlog-report";
/// How the stream of the JSON document embedded in a PDF report starts, up to its length.
pub(crate) const PDF_EMBED_DICT: &str =
    "<< /Type /EmbeddedFile /Subtype /application#2Fjson /Length ";

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant whitespace,
/// strings and numbers as serde_json writes them.
pub fn canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(
                    serde_json::to_string(k)
                        .expect("string serializes")
                        .as_bytes(),
                );
                out.push(b':');
                canonical(&m[k], out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(x, out);
            }
            out.push(b']');
        }
        other => out.extend(
            serde_json::to_string(other)
                .expect("scalar serializes")
                .as_bytes(),
        ),
    }
}

/// SHA-256 of the canonical body (the document without `integrity`).
pub fn body_digest(doc: &Value) -> [u8; 32] {
    let mut body = doc.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("integrity");
    }
    let mut buf = Vec::new();
    canonical(&body, &mut buf);
    Sha256::digest(&buf).into()
}

pub(crate) fn mac(chain: &Chain, digest: &[u8; 32]) -> [u8; 32] {
    chain.sign(DOMAIN, &[digest])
}

/// Adds the `integrity` member to a document.
pub(crate) fn seal(doc: &mut Value, chain: &Chain) {
    let d = body_digest(doc);
    doc["integrity"] = serde_json::json!({
        "canonicalization": "JSON of the document without `integrity`, object keys sorted bytewise, no whitespace",
        "sha256": hex(&d),
        "hmac_sha256": hex(&mac(chain, &d)),
    });
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportCheck {
    /// Both the digest and the MAC match.
    pub ok: bool,
    pub sha256_ok: bool,
    pub hmac_ok: bool,
    /// The digest recomputed from the document's body.
    pub sha256: String,
    /// The log the report is about, as the report says.
    pub log_id: Option<String>,
    /// Whether the report's own evidence said the log verified when it was generated.
    pub evidence_ok: Option<bool>,
}

/// The JSON document of a report file: a JSON report, or the one embedded in an HTML report.
pub fn document_of(bytes: &[u8]) -> Result<Value> {
    let bad = |m: String| Error::InvalidQuery {
        param: "report".into(),
        message: m,
    };
    if bytes.starts_with(b"%PDF-") {
        let doc = pdf_document(bytes).ok_or_else(|| {
            bad("a PDF without the embedded report document (auditlog-report.json)".into())
        })?;
        return serde_json::from_slice(doc)
            .map_err(|e| bad(format!("the PDF's embedded report is not valid JSON: {e}")));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 text: {e}")))?;
    let t = text.trim_start();
    let json = if t.starts_with('{') {
        t
    } else {
        let open = format!("<script type=\"application/json\" id=\"{EMBED_ID}\">");
        let start = text.find(&open).ok_or_else(|| {
            bad(
                "neither a JSON report nor an HTML report with its embedded JSON document \
                 (CSV and PDF reports carry the digest but cannot be checked: check the JSON)"
                    .into(),
            )
        })? + open.len();
        let len = text[start..]
            .find("</script>")
            .ok_or_else(|| bad("the embedded JSON document is not closed".into()))?;
        &text[start..start + len]
    };
    serde_json::from_str(json).map_err(|e| bad(format!("the report is not valid JSON: {e}")))
}

/// The bytes of the JSON document embedded in a PDF report (its EmbeddedFile stream).
fn pdf_document(bytes: &[u8]) -> Option<&[u8]> {
    let key = PDF_EMBED_DICT.as_bytes();
    let at = bytes.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &bytes[at..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let len: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let start = at + digits + b" >>\nstream\n".len();
    if bytes.get(at + digits..start)? != b" >>\nstream\n" {
        return None;
    }
    bytes.get(start..start.checked_add(len)?)
}

/// Checks a report file's digest and MAC with the key of the log it was made from.
pub fn verify(bytes: &[u8], key: &HmacKey) -> Result<ReportCheck> {
    let doc = document_of(bytes)?;
    let integ = doc.get("integrity").ok_or_else(|| Error::InvalidQuery {
        param: "integrity".into(),
        message: "the report has no integrity member (sha256, hmac_sha256)".into(),
    })?;
    let field = |name: &str| -> Result<[u8; 32]> {
        integ
            .get(name)
            .and_then(Value::as_str)
            .and_then(unhex::<32>)
            .ok_or_else(|| Error::InvalidQuery {
                param: format!("integrity.{name}"),
                message: "missing or not 64 hex digits".into(),
            })
    };
    let (want_sha, want_mac) = (field("sha256")?, field("hmac_sha256")?);
    let d = body_digest(&doc);
    let sha256_ok = ct_eq(&d, &want_sha);
    let hmac_ok = ct_eq(&mac(&Chain::new(key), &d), &want_mac);
    Ok(ReportCheck {
        ok: sha256_ok && hmac_ok,
        sha256_ok,
        hmac_ok,
        sha256: hex(&d),
        log_id: doc
            .get("log_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        evidence_ok: doc.pointer("/evidence/ok").and_then(Value::as_bool),
    })
}
