//! An optional Ed25519 signature over a report's SHA-256, made with a transparency signer key
//! (`auditlog keygen`) so that anyone holding the public verifier key, not only holders of the
//! log's HMAC key, can check a report. The signature is a C2SP signed note whose text is
//! [`signed_text`]; see docs/REPORTS.md.

use serde_json::{json, Value};

use super::seal::{body_digest, document_of};
use super::Report;
use crate::chain::hex;
use crate::error::{Error, Result};
use crate::note::{self, SignerKey, VerifierKey};

/// The exact bytes the Ed25519 signature covers: `auditlog/report/v1\nsha256 <64 hex>\n`.
pub fn signed_text(sha256_hex: &str) -> String {
    format!("auditlog/report/v1\nsha256 {sha256_hex}\n")
}

impl Report {
    /// Adds `integrity.ed25519` (`verifier_key`, `signature`, `note`): `key`'s signature of
    /// [`signed_text`] of the report's SHA-256. The digest and HMAC are unchanged (they do not
    /// cover `integrity`).
    pub fn sign(&mut self, key: &SignerKey) -> Result<()> {
        let note = key.sign(&signed_text(self.sha256()))?;
        let (_, sigs) = note::parse(&note)?;
        self.doc["integrity"]["ed25519"] = json!({
            "verifier_key": key.verifier().to_string(),
            "signature": sigs[0].base64,
            "note": note,
        });
        Ok(())
    }
}

/// What [`verify_signature`] found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureCheck {
    /// The signature is by the given key, verifies, and covers the digest recomputed from the
    /// report's body.
    pub ok: bool,
    /// The digest recomputed from the document's body.
    pub sha256: String,
    /// The digest the signed text names.
    pub signed_sha256: Option<String>,
    /// Why the check failed.
    pub problem: Option<String>,
}

fn bad(param: &str, m: impl Into<String>) -> Error {
    Error::InvalidQuery {
        param: param.into(),
        message: m.into(),
    }
}

/// Checks a JSON, HTML or PDF report's Ed25519 signature with the verifier key `key`.
pub fn verify_signature(bytes: &[u8], key: &VerifierKey) -> Result<SignatureCheck> {
    let doc = document_of(bytes)?;
    let sha256 = hex(&body_digest(&doc));
    let note = doc
        .pointer("/integrity/ed25519/note")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad(
                "integrity.ed25519",
                "the report is not signed (no integrity.ed25519.note); sign it with \
                 `auditlog report --sign-key FILE`",
            )
        })?;
    let fail = |signed: Option<String>, p: String| SignatureCheck {
        ok: false,
        sha256: sha256.clone(),
        signed_sha256: signed,
        problem: Some(p),
    };
    let (text, sigs) = match note::parse(note) {
        Ok(p) => p,
        Err(e) => return Ok(fail(None, format!("the signature note is malformed: {e}"))),
    };
    let signed = text
        .strip_prefix("auditlog/report/v1\nsha256 ")
        .and_then(|r| r.strip_suffix('\n'))
        .map(str::to_string);
    if !sigs
        .iter()
        .any(|s| s.name == key.name() && s.id == key.id())
    {
        let by: Vec<String> = sigs
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.id))
            .collect();
        return Ok(fail(
            signed,
            format!(
                "signed by {}, not by the given key {}+{:08x}",
                by.join(", "),
                key.name(),
                key.id()
            ),
        ));
    }
    let opened = match note::open(note, std::slice::from_ref(key)) {
        Ok(o) => o,
        Err(e) => return Ok(fail(signed, format!("the signature does not verify: {e}"))),
    };
    if opened.text != signed_text(&sha256) {
        return Ok(fail(
            signed,
            "the signed digest is not the report's: the report was changed after it was signed"
                .into(),
        ));
    }
    Ok(SignatureCheck {
        ok: true,
        sha256,
        signed_sha256: signed,
        problem: None,
    })
}
