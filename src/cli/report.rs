//! `auditlog report` and `auditlog verify-report`.

use std::io::Write;
use std::path::{Path, PathBuf};

use auditlog::note::{SignerKey, VerifierKey};
use auditlog::report::{ReportRequest, ReportType};
use auditlog::{Config, Error, HmacKey, Log, Options};
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// Arguments of `auditlog report` (the seed's request, as flags).
#[derive(clap::Args)]
pub struct ReportArgs {
    /// access_audit, change_audit, security_audit, compliance_audit or user_activity.
    #[arg(long = "type")]
    report_type: String,
    /// soc2_type2, iso27001, gdpr or hipaa.
    #[arg(long)]
    framework: Option<String>,
    /// Start of the range (RFC 3339 or YYYY-MM-DD), inclusive.
    #[arg(long)]
    start: String,
    /// End of the range (RFC 3339 or YYYY-MM-DD, a whole day), inclusive.
    #[arg(long)]
    end: String,
    /// A section to include (repeatable): authentication_events, authorization_events,
    /// configuration_changes, security_incidents, data_access. Default: the type's sections.
    #[arg(long)]
    section: Vec<String>,
    /// json, html, csv or pdf (pdf needs the `pdf` feature, a default).
    #[arg(long, default_value = "json")]
    format: String,
    /// Include the events of the range themselves as evidence.
    #[arg(long)]
    evidence: bool,
    /// The user of a user_activity report.
    #[arg(long)]
    user_id: Option<String>,
    /// Write the report here instead of stdout.
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// Sign the report's SHA-256 with this Ed25519 signer key file (`auditlog keygen`); the
    /// signature goes into `integrity.ed25519`.
    #[arg(long)]
    sign_key: Option<PathBuf>,
}

impl ReportArgs {
    fn request(&self) -> Result<ReportRequest, Error> {
        let mut v = json!({
            "report_type": self.report_type,
            "date_range": {"start_date": self.start, "end_date": self.end},
            "format": self.format,
            "include_evidence": self.evidence,
        });
        if let Some(f) = &self.framework {
            v["compliance_framework"] = f.as_str().into();
        }
        if !self.section.is_empty() {
            v["include_sections"] = self
                .section
                .iter()
                .map(|s| Value::from(s.as_str()))
                .collect();
        }
        if let Some(u) = &self.user_id {
            v["user_id"] = u.as_str().into();
        }
        ReportRequest::from_value(&v)
    }
}

/// The `data_access` event that records a report's generation.
pub fn access_event(req: &ReportRequest, sha256: &str, actor: &str) -> String {
    json!({
        "event_type": "data_access",
        "action": "report_generated",
        "status": "success",
        "severity": "info",
        "actor": {"user_id": actor},
        "resource": {"type": "audit_log", "id": "report"},
        "details": {
            "report_type": req.report_type.as_str(),
            "compliance_framework": req.compliance_framework.map(|f| f.as_str()),
            "start_date": req.to_value()["date_range"]["start_date"],
            "end_date": req.to_value()["date_range"]["end_date"],
            "format": req.format.as_str(),
            "include_evidence": req.include_evidence,
            "user_id": req.user_id,
            "report_sha256": sha256,
            "via": "cli",
        },
    })
    .to_string()
}

/// Generates the report; on a log this process can open for writing, records it as a
/// `data_access` event before the report is written out.
pub fn run(data: &Path, cfg: &Config, opts: Options, args: &ReportArgs) -> Result<i32, Error> {
    let req = args.request()?;
    let (log, writable) = match Log::open(data, opts) {
        Ok(l) => (l, true),
        Err(Error::Locked { .. }) => (Log::open_read_only(data, cfg.audit_logs.key()?)?, false),
        Err(e) => return Err(e),
    };
    let mut report = log.report(&req)?;
    if let Some(p) = &args.sign_key {
        report.sign(&read_signer(p)?)?;
    }
    let bytes = report.render()?;
    if writable {
        let actor = std::env::var("USER").unwrap_or_else(|_| "cli".to_string());
        log.append_json(access_event(&req, report.sha256(), &actor).as_bytes())?;
        log.flush()?;
    } else {
        eprintln!(
            "note: the log is locked by another writer; this report is not recorded as a \
             data_access event (generate it through the server to have it recorded)"
        );
    }
    match &args.out {
        Some(p) => std::fs::write(p, &bytes).map_err(|e| Error::io("writing report", p, e))?,
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(&bytes)
                .and_then(|_| o.flush())
                .map_err(|e| Error::io("writing to", "stdout", e))?;
        }
    }
    if req.report_type == ReportType::UserActivity && report.json()["user"]["events"] == 0 {
        eprintln!("note: no events of this user in the range");
    }
    if !report.evidence_ok() {
        eprintln!("warning: the report's evidence says verification FAILED (see evidence)");
    }
    eprintln!("report sha256 {}", report.sha256());
    Ok(0)
}

fn read_signer(p: &Path) -> Result<SignerKey, Error> {
    let text = Zeroizing::new(
        std::fs::read_to_string(p).map_err(|e| Error::io("reading signer key", p, e))?,
    );
    SignerKey::parse(text.trim())
}

/// A verifier key given as its string or as a file holding it.
fn read_verifier(arg: &str) -> Result<VerifierKey, Error> {
    let p = Path::new(arg);
    if p.is_file() {
        let text =
            std::fs::read_to_string(p).map_err(|e| Error::io("reading verifier key", p, e))?;
        VerifierKey::parse(text.trim())
    } else {
        VerifierKey::parse(arg.trim())
    }
}

/// Checks a report file's SHA-256 and HMAC, and with `public_key` its Ed25519 signature.
/// Exit 0 when all match, 1 otherwise.
pub fn verify_file(file: &Path, key: &HmacKey, public_key: Option<&str>) -> Result<i32, Error> {
    let bytes = std::fs::read(file).map_err(|e| Error::io("reading report", file, e))?;
    if let Some(vk) = public_key {
        let sig = auditlog::report::verify_signature(&bytes, &read_verifier(vk)?)?;
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ed25519": sig})).expect("check serializes")
        );
        if !sig.ok {
            eprintln!(
                "report {} signature does not verify: {}",
                file.display(),
                sig.problem.as_deref().unwrap_or("unknown")
            );
            return Ok(1);
        }
    }
    let check = auditlog::report::verify(&bytes, key)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&check).expect("check serializes")
    );
    if check.ok {
        if check.evidence_ok == Some(false) {
            eprintln!("note: the report is authentic, and its evidence says the log did not verify when it was generated");
        }
        Ok(0)
    } else {
        eprintln!(
            "report {} does not verify: {}",
            file.display(),
            if !check.sha256_ok {
                "its content was changed after it was generated (SHA-256 mismatch)"
            } else {
                "its HMAC does not match (another key, or the digest fields were edited)"
            }
        );
        Ok(1)
    }
}
