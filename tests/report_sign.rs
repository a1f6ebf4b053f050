//! Ed25519 signatures on reports: a signed report verifies with its verifier key (JSON and
//! HTML), not with another key, and not once its content is edited; the signature covers
//! exactly `auditlog/report/v1\nsha256 <hex>\n`; CLI `report --sign-key` and
//! `verify-report --public-key` end to end.
#![cfg(feature = "cli")]

mod common;

use std::path::Path;
use std::process::Command;

use auditlog::note::{self, SignerKey};
use auditlog::report::{self, ReportFormat, ReportRequest};
use auditlog::{Error, HmacKey, Log};
use chrono::{TimeZone, Utc};
use common::{events, key};
use serde_json::{json, Value};

fn write(dir: &Path, hk: HmacKey, n: usize) {
    let t0 = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    let evs: Vec<_> = events(5, n)
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e.timestamp = Some(t0 + chrono::Duration::minutes(41 * i as i64));
            e
        })
        .collect();
    let log = Log::open(dir, auditlog::Options::new(hk)).unwrap();
    log.append_batch(&evs).unwrap();
}

fn request() -> ReportRequest {
    ReportRequest::from_value(&json!({
        "report_type": "security_audit", "compliance_framework": "iso27001",
        "date_range": {"start_date": "2024-01-01", "end_date": "2024-01-31"},
    }))
    .unwrap()
}

#[test]
fn a_signed_report_verifies_only_with_its_key_and_only_unedited() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), key(), 400);
    let log = Log::open_read_only(dir.path(), key()).unwrap();
    let mut r = log.report(&request()).unwrap();
    let before = r.sha256().to_string();
    let hmac_before = r.json()["integrity"]["hmac_sha256"].clone();
    let sk = SignerKey::generate("example.com/reports").unwrap();
    r.sign(&sk).unwrap();
    // Signing adds to `integrity` only: the digest and MAC stay.
    assert_eq!(r.sha256(), before);
    assert_eq!(r.json()["integrity"]["hmac_sha256"], hmac_before);
    let sig = &r.json()["integrity"]["ed25519"];
    assert_eq!(sig["verifier_key"], sk.verifier().to_string());
    // The signed bytes are exactly the documented text.
    let (text, sigs) = note::parse(sig["note"].as_str().unwrap()).unwrap();
    assert_eq!(text, format!("auditlog/report/v1\nsha256 {before}\n"));
    assert_eq!(text, report::signed_text(&before));
    assert_eq!(sigs[0].base64, sig["signature"].as_str().unwrap());

    let mut formats = vec![ReportFormat::Json, ReportFormat::Html];
    if cfg!(feature = "pdf") {
        // The PDF attaches the signed document (auditlog-report.json).
        formats.push(ReportFormat::Pdf);
    }
    for f in formats {
        let bytes = r.render_as(f).unwrap();
        let c = report::verify_signature(&bytes, &sk.verifier()).unwrap();
        assert!(c.ok, "{f:?}: {c:?}");
        assert_eq!(c.sha256, before);
        assert_eq!(c.signed_sha256.as_deref(), Some(before.as_str()));
        assert!(
            report::verify(&bytes, &key()).unwrap().ok,
            "HMAC still checks"
        );
    }
    let bytes = r.render_as(ReportFormat::Json).unwrap();

    // Another key: refused, naming who signed.
    let other = SignerKey::generate("example.com/reports").unwrap();
    let c = report::verify_signature(&bytes, &other.verifier()).unwrap();
    assert!(!c.ok);
    assert!(c.problem.unwrap().contains("not by the given key"));

    // An edited count: the signature no longer covers the body.
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    let n = doc["summary"]["events"].as_u64().unwrap();
    doc["summary"]["events"] = (n + 1).into();
    let edited = serde_json::to_vec(&doc).unwrap();
    let c = report::verify_signature(&edited, &sk.verifier()).unwrap();
    assert!(!c.ok);
    assert!(c.problem.unwrap().contains("changed after it was signed"));
    assert_ne!(c.sha256, before);

    // A forged digest in the signed note (the attacker recomputes the digest): the signature
    // itself fails.
    let mut doc: Value = serde_json::from_slice(&edited).unwrap();
    let new_sha = report::verify(&edited, &key()).unwrap().sha256;
    let forged = sig["note"].as_str().unwrap().replace(&before, &new_sha);
    doc["integrity"]["ed25519"]["note"] = forged.into();
    let c = report::verify_signature(&serde_json::to_vec(&doc).unwrap(), &sk.verifier()).unwrap();
    assert!(!c.ok);
    assert!(c.problem.unwrap().contains("does not verify"), "forged");

    // An unsigned report: a clear error naming integrity.ed25519.
    let unsigned = log.report(&request()).unwrap().render().unwrap();
    match report::verify_signature(&unsigned, &sk.verifier()) {
        Err(Error::InvalidQuery { param, .. }) => assert_eq!(param, "integrity.ed25519"),
        other => panic!("{other:?}"),
    }
}

const CLI_KEY: &str = "cli-report-sign-key-0123456789-abcdefgh";

fn cli(data: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_auditlog"))
        .env("AUDIT_HMAC_KEY", CLI_KEY)
        .env_remove("AUDITLOG_DATA")
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run auditlog")
}

#[test]
fn cli_sign_key_and_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    write(&data, HmacKey::from_bytes(CLI_KEY.as_bytes()).unwrap(), 300);
    let sk_path = dir.path().join("signer.key");
    let o = cli(
        &data,
        &[
            "keygen",
            "--name",
            "example.com/audit",
            "--out",
            sk_path.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let vkey = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let out = dir.path().join("r.html");
    let o = cli(
        &data,
        &[
            "report",
            "--type",
            "access_audit",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-31",
            "--format",
            "html",
            "--sign-key",
            sk_path.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let good = cli(
        &data,
        &[
            "verify-report",
            out.to_str().unwrap(),
            "--public-key",
            &vkey,
        ],
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("\"ok\": true"));
    // The verifier key in a file works too.
    let vk_path = dir.path().join("verifier.pub");
    std::fs::write(&vk_path, format!("{vkey}\n")).unwrap();
    let good = cli(
        &data,
        &[
            "verify-report",
            out.to_str().unwrap(),
            "--public-key",
            vk_path.to_str().unwrap(),
        ],
    );
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    // A wrong key: exit 1 with the reason.
    let other = SignerKey::generate("example.com/audit")
        .unwrap()
        .verifier()
        .to_string();
    let bad = cli(
        &data,
        &[
            "verify-report",
            out.to_str().unwrap(),
            "--public-key",
            &other,
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not by the given key"));
    // An edited report: exit 1.
    let html = std::fs::read_to_string(&out).unwrap();
    let edited = html.replacen(
        "\"report_type\":\"access_audit\"",
        "\"report_type\":\"change_audit\"",
        1,
    );
    assert_ne!(edited, html);
    std::fs::write(&out, edited).unwrap();
    let bad = cli(
        &data,
        &[
            "verify-report",
            out.to_str().unwrap(),
            "--public-key",
            &vkey,
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("changed after it was signed"));
    // A malformed verifier key: an error naming it.
    let bad = cli(
        &data,
        &[
            "verify-report",
            out.to_str().unwrap(),
            "--public-key",
            "nope",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("verifier key"));
}
