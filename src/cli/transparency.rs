//! `auditlog keygen | checkpoint --signed | prove | prove-consistency | verify-proof`: the
//! Merkle tree's signed checkpoints and proofs (see docs/TRANSPARENCY.md).

use std::path::{Path, PathBuf};

use auditlog::note::{SignerKey, VerifierKey};
use auditlog::transparency;
use auditlog::{Error, Log};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum TlogCommand {
    /// Make an Ed25519 signer key for signed checkpoints; writes it (mode 0600) and prints the
    /// verifier key to publish.
    Keygen {
        /// The key's name, also the checkpoints' origin line (e.g. `example.com/audit`).
        #[arg(long)]
        name: String,
        /// Signer key file to create (refuses to overwrite).
        #[arg(long, default_value = "auditlog-signer.key")]
        out: PathBuf,
    },
    /// Print the inclusion proof (JSON) of record --seq N or of the event --event-id ID,
    /// against the latest signed checkpoint or the stored tree of --size leaves; with
    /// `--format tlog-proof`, an offline receipt in the C2SP tlog-proof@v1 shape.
    Prove {
        #[arg(
            long,
            conflicts_with = "event_id",
            required_unless_present = "event_id"
        )]
        seq: Option<u64>,
        #[arg(long)]
        event_id: Option<String>,
        #[arg(long)]
        size: Option<u64>,
        /// `json` (auditlog's proof) or `tlog-proof` (c2sp.org/tlog-proof@v1; needs a signed
        /// checkpoint of the tree, so no --size other than the latest signed one).
        #[arg(long, default_value = "json", value_parser = ["json", "tlog-proof"])]
        format: String,
    },
    /// Print the consistency proof (JSON) between the stored trees of OLD and NEW leaves.
    ProveConsistency { old: u64, new: u64 },
    /// Check a proof file with only the verifier key. Exit 0 when it verifies.
    VerifyProof {
        /// The verifier key string (`name+id+key`) or a file holding it.
        #[arg(long)]
        key: String,
        /// The proof (from `prove`, either format, or `prove-consistency`); `-` reads stdin.
        #[arg(long)]
        proof: PathBuf,
    },
}

fn open_any(data: &Path, key: auditlog::HmacKey, opts: auditlog::Options) -> Result<Log, Error> {
    match Log::open(data, opts) {
        Ok(l) => Ok(l),
        Err(Error::Locked { .. }) => Log::open_read_only(data, key),
        Err(e) => Err(e),
    }
}

pub(crate) fn read_signer(path: &Path) -> Result<SignerKey, Error> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| Error::io("reading signer key", path, e))?,
    );
    SignerKey::parse(&text).map_err(|e| Error::Transparency(format!("{}: {e}", path.display())))
}

/// `checkpoint --signed --key FILE`: sync the tree, sign, print the note.
pub(crate) fn signed_checkpoint(
    data: &Path,
    opts: auditlog::Options,
    key_file: &Path,
    out: Option<&Path>,
) -> Result<i32, Error> {
    let key = read_signer(key_file)?;
    let log = Log::open(data, opts).map_err(|e| match e {
        Error::Locked { .. } => Error::Transparency(format!(
            "{e}; a signed checkpoint extends the Merkle tiles and needs the writer"
        )),
        e => e,
    })?;
    let note = transparency::sign_checkpoint(&log, &key)?;
    if let Some(p) = out {
        std::fs::write(p, &note).map_err(|e| Error::io("writing", p, e))?;
    }
    print!("{note}");
    Ok(0)
}

pub(crate) fn run(
    cmd: &TlogCommand,
    data: &Path,
    hmac: impl Fn() -> Result<(auditlog::HmacKey, auditlog::Options), Error>,
) -> Result<i32, Error> {
    match cmd {
        TlogCommand::Keygen { name, out } => {
            let k = SignerKey::generate(name)?;
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode_0600()
                .open(out)
                .map_err(|e| Error::io("creating signer key file", out, e))?;
            use std::io::Write;
            let mut f = f;
            f.write_all(format!("{}\n", k.to_secret_string().as_str()).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| Error::io("writing", out, e))?;
            eprintln!("signer key written to {} (keep it secret)", out.display());
            println!("{}", k.verifier());
            Ok(0)
        }
        TlogCommand::Prove {
            seq,
            event_id,
            size,
            format,
        } => {
            let (key, opts) = hmac()?;
            let log = open_any(data, key, opts)?;
            let seq = match (seq, event_id) {
                (Some(s), _) => *s,
                (None, Some(id)) => {
                    log.find_event(id)?
                        .ok_or_else(|| {
                            Error::Transparency(format!(
                                "--event-id: no event with event_id {id:?}"
                            ))
                        })?
                        .seq
                }
                (None, None) => unreachable!("clap requires --seq or --event-id"),
            };
            let p = transparency::prove_inclusion(&log, seq, *size)?;
            if format == "tlog-proof" {
                print!("{}", auditlog::tlog_proof::format(&p)?);
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&p).expect("proof serializes")
                );
            }
            Ok(0)
        }
        TlogCommand::ProveConsistency { old, new } => {
            let (key, opts) = hmac()?;
            let log = open_any(data, key, opts)?;
            let p = transparency::prove_consistency(&log, *old, *new)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&p).expect("proof serializes")
            );
            Ok(0)
        }
        TlogCommand::VerifyProof { key, proof } => {
            let key_text = if Path::new(key).is_file() {
                std::fs::read_to_string(key)
                    .map_err(|e| Error::io("reading verifier key", key, e))?
            } else {
                key.clone()
            };
            let vk = VerifierKey::parse(key_text.trim())?;
            let json = if proof == Path::new("-") {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| Error::io("reading", "stdin", e))?;
                s
            } else {
                std::fs::read_to_string(proof).map_err(|e| Error::io("reading proof", proof, e))?
            };
            if auditlog::tlog_proof::is_receipt(&json) {
                return match auditlog::tlog_proof::verify(&json, &vk) {
                    Ok(v) => {
                        println!(
                            "ok: record {} (timestamp_ns {}, digest {}) is in the tree of size {} signed by {}",
                            v.seq,
                            v.timestamp_ns,
                            v.digest,
                            v.checkpoint.size,
                            vk.name()
                        );
                        Ok(0)
                    }
                    Err(e) => {
                        eprintln!("proof does not verify: {e}");
                        Ok(1)
                    }
                };
            }
            match transparency::verify_proof(&json, &vk) {
                Ok(v) => {
                    match v.old {
                        None => println!(
                            "ok: inclusion in the tree of size {} signed by {}",
                            v.checkpoint.size,
                            vk.name()
                        ),
                        Some((n, _)) => println!(
                            "ok: the tree of size {n} is a prefix of the tree of size {} signed by {}",
                            v.checkpoint.size,
                            vk.name()
                        ),
                    }
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("proof does not verify: {e}");
                    Ok(1)
                }
            }
        }
    }
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}
