//! `auditlog keygen | checkpoint --signed | prove | prove-consistency | verify-proof`: the
//! Merkle tree's signed checkpoints and proofs (see docs/TRANSPARENCY.md).

use std::path::{Path, PathBuf};

use auditlog::note::{KeyType, SignerKey, VerifierKey};
use auditlog::transparency;
use auditlog::{Error, Log};
use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum TlogCommand {
    /// Make an Ed25519 signer key for signed checkpoints; writes it (mode 0600) and prints the
    /// verifier key to publish.
    Keygen {
        /// The key's name, also the checkpoints' origin line (e.g. `example.com/audit`).
        #[arg(long, required_unless_present = "rotate")]
        name: Option<String>,
        /// Rotate: make a successor of this signer key file (same name) and a rotation
        /// statement signed by both keys (written to --statement), which lets verifiers that
        /// trust the old key accept checkpoints signed by the new one.
        #[arg(long, conflicts_with = "cosigner")]
        rotate: Option<PathBuf>,
        /// Where --rotate writes the rotation statement (default: <out>.rotation).
        #[arg(long, requires = "rotate")]
        statement: Option<PathBuf>,
        /// Signer key file to create (refuses to overwrite).
        #[arg(long, default_value = "auditlog-signer.key")]
        out: PathBuf,
        /// Make a witness's cosigner key instead (C2SP tlog-cosignature, `cosignature/v1`,
        /// signature type 0x04), for `auditlog witness --key`.
        #[arg(long)]
        cosigner: bool,
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
        /// A witness's cosignature/v1 verifier key (string or file; repeatable): the proof's
        /// checkpoint must also carry --quorum valid cosignatures by these witnesses.
        #[arg(long)]
        witness: Vec<String>,
        /// Cosignatures needed (default: every --witness).
        #[arg(long, requires = "witness")]
        quorum: Option<usize>,
        /// A key rotation statement (`keygen --rotate`; repeatable): checkpoints signed by
        /// a key rotated from --key are accepted too.
        #[arg(long)]
        rotation: Vec<PathBuf>,
    },
    /// Check signed checkpoints of one log against each other (and against the tree in
    /// --data when it has one): reports a FORK, naming both files, when two of the same size
    /// have different roots or no valid consistency proof leads from the smaller to the
    /// larger. Exit 0 when all agree, 1 on a fork or a checkpoint that does not verify.
    VerifyCheckpoints {
        /// The log's verifier key (string or file).
        #[arg(long)]
        key: String,
        /// Consistency proofs (JSON of `prove-consistency` or of the HTTP route) to use for
        /// sizes the local tree cannot prove (repeatable).
        #[arg(long)]
        proof: Vec<PathBuf>,
        /// A witness's verifier key (repeatable): each checkpoint must carry --quorum valid
        /// cosignatures by these.
        #[arg(long)]
        witness: Vec<String>,
        #[arg(long, requires = "witness")]
        quorum: Option<usize>,
        /// A key rotation statement (`keygen --rotate`; repeatable): checkpoints signed by
        /// a key rotated from --key are accepted too.
        #[arg(long)]
        rotation: Vec<PathBuf>,
        /// Signed checkpoint files (notes, cosignatures allowed).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Run a C2SP tlog-witness (`POST <prefix>/add-checkpoint`) for the logs --log: cosigns
    /// each checkpoint consistent with the last one it cosigned for that origin, kept in
    /// --state. Stops on SIGTERM or SIGINT.
    #[cfg(feature = "server")]
    Witness {
        /// The witness's cosigner key file (`auditlog keygen --cosigner`).
        #[arg(long)]
        key: PathBuf,
        /// A log to witness: its verifier key, or `"ORIGIN VKEY"` when the origin line is
        /// not the key's name (repeatable).
        #[arg(long, required = true)]
        log: Vec<String>,
        /// State directory (latest cosigned checkpoint per origin, evidence of forks).
        #[arg(long, default_value = "auditlog-witness")]
        state: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: String,
        /// Submission prefix (e.g. `/witness`); empty serves `/add-checkpoint`.
        #[arg(long, default_value = "")]
        prefix: String,
    },
}

/// A key given as a string or as a file holding it.
fn key_text(key: &str, what: &'static str) -> Result<String, Error> {
    if Path::new(key).is_file() {
        std::fs::read_to_string(key)
            .map(|t| t.trim().to_string())
            .map_err(|e| Error::io(what, key, e))
    } else {
        Ok(key.trim().to_string())
    }
}

/// The log key `key` (string or file) and the keys rotated from it by the statement files.
fn log_keys(key: &str, rotations: &[PathBuf]) -> Result<Vec<VerifierKey>, Error> {
    let vk = VerifierKey::parse_typed(
        &key_text(key, "reading verifier key")?,
        KeyType::Ed25519,
        "--key",
    )?;
    let statements = rotations
        .iter()
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| Error::io("reading rotation statement", p, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let keys = auditlog::note::follow_rotations(&vk, &statements)?;
    for k in &keys[1..] {
        eprintln!(
            "trusting {}+{:08x}: rotated from {}+{:08x}",
            k.name(),
            k.id(),
            vk.name(),
            vk.id()
        );
    }
    Ok(keys)
}

fn witness_keys(keys: &[String]) -> Result<Vec<VerifierKey>, Error> {
    keys.iter()
        .map(|k| {
            VerifierKey::parse_typed(
                &key_text(k, "reading witness key")?,
                KeyType::CosignatureV1,
                "--witness",
            )
        })
        .collect()
}

/// Checks that `note` carries `quorum` (default all) cosignatures by `witnesses`; prints them.
fn check_quorum(
    note: &str,
    witnesses: &[VerifierKey],
    quorum: Option<usize>,
    what: &str,
) -> Result<bool, Error> {
    if witnesses.is_empty() {
        return Ok(true);
    }
    let need = quorum.unwrap_or(witnesses.len());
    let got = auditlog::note::cosignatures(note, witnesses)?;
    for c in &got {
        println!(
            "{what}: cosigned by {}+{:08x} at {}",
            c.name, c.id, c.timestamp
        );
    }
    if got.len() < need {
        eprintln!(
            "{what}: {} valid witness cosignature(s), {need} needed",
            got.len()
        );
        return Ok(false);
    }
    Ok(true)
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

/// `checkpoint --signed --key FILE [--witness "URL VKEY"]...`: sync the tree, sign, gather
/// cosignatures, print the note.
pub(crate) fn signed_checkpoint(
    data: &Path,
    opts: auditlog::Options,
    key_file: &Path,
    out: Option<&Path>,
    witnesses: &[String],
    quorum: Option<usize>,
) -> Result<i32, Error> {
    let key = read_signer(key_file)?;
    let log = Log::open(data, opts).map_err(|e| match e {
        Error::Locked { .. } => Error::Transparency(format!(
            "{e}; a signed checkpoint extends the Merkle tiles and needs the writer"
        )),
        e => e,
    })?;
    let targets = witnesses
        .iter()
        .map(|w| auditlog::witness::WitnessTarget::parse(w))
        .collect::<Result<Vec<_>, _>>()?;
    #[cfg(not(feature = "server"))]
    if !targets.is_empty() {
        let _ = quorum;
        return Err(Error::Transparency(
            "--witness needs auditlog built with the `server` feature".into(),
        ));
    }
    #[cfg(feature = "server")]
    let previous = transparency::last_signed(data)?;
    let note = transparency::sign_checkpoint(&log, &key)?;
    #[cfg(not(feature = "server"))]
    let code = 0;
    #[cfg(feature = "server")]
    let (note, code) = if targets.is_empty() {
        (note, 0)
    } else {
        let (kept, outcomes) = transparency::witness_latest(
            &log,
            &targets,
            previous.as_deref(),
            std::time::Duration::from_secs(30),
        )?;
        let mut ok = 0;
        for o in &outcomes {
            match &o.result {
                Ok(c) => {
                    ok += 1;
                    eprintln!("witness {}: cosigned at {}", o.witness, c.timestamp);
                }
                Err(e) => eprintln!("witness {}: no cosignature: {e}", o.witness),
            }
        }
        let need = quorum.unwrap_or(targets.len());
        if ok < need {
            eprintln!("{ok} cosignature(s), {need} needed (--quorum)");
            (kept, 1)
        } else {
            (kept, 0)
        }
    };
    if let Some(p) = out {
        std::fs::write(p, &note).map_err(|e| Error::io("writing", p, e))?;
    }
    print!("{note}");
    Ok(code)
}

pub(crate) fn run(
    cmd: &TlogCommand,
    data: &Path,
    hmac: impl Fn() -> Result<(auditlog::HmacKey, auditlog::Options), Error>,
) -> Result<i32, Error> {
    match cmd {
        TlogCommand::Keygen {
            name,
            rotate,
            statement,
            out,
            cosigner,
        } => {
            let ty = if *cosigner {
                KeyType::CosignatureV1
            } else {
                KeyType::Ed25519
            };
            let old = rotate.as_deref().map(read_signer).transpose()?;
            let name = match (&old, name) {
                (Some(o), Some(n)) if n != o.name() => {
                    return Err(Error::Transparency(format!(
                        "--name {n:?}: a rotated key keeps the old key's name {:?} (the \
                         checkpoints' origin); leave --name out",
                        o.name()
                    )))
                }
                (Some(o), _) => o.name().to_string(),
                (None, Some(n)) => n.clone(),
                (None, None) => unreachable!("clap requires --name or --rotate"),
            };
            let k = SignerKey::generate_typed(&name, ty)?;
            // The statement is made (and checked) before any file is written.
            let rotation = old
                .as_ref()
                .map(|o| auditlog::note::rotation_statement(o, &k))
                .transpose()?;
            let statement_path = statement.clone().unwrap_or_else(|| {
                let mut p = out.clone().into_os_string();
                p.push(".rotation");
                PathBuf::from(p)
            });
            if rotation.is_some() && statement_path.exists() {
                return Err(Error::Transparency(format!(
                    "{}: the rotation statement file exists already (refusing to overwrite)",
                    statement_path.display()
                )));
            }
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
            if let (Some(text), Some(o)) = (&rotation, &old) {
                std::fs::write(&statement_path, text)
                    .map_err(|e| Error::io("writing rotation statement", &statement_path, e))?;
                eprintln!(
                    "rotation statement {}+{:08x} -> {}+{:08x} written to {} (publish it beside \
                     the new verifier key; sign with the new key from now on)",
                    o.name(),
                    o.id(),
                    k.name(),
                    k.id(),
                    statement_path.display()
                );
            }
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
        TlogCommand::VerifyProof {
            key,
            proof,
            witness,
            quorum,
            rotation,
        } => {
            let keys = log_keys(key, rotation)?;
            let vk = &keys[0];
            let wks = witness_keys(witness)?;
            let json = if proof == Path::new("-") {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| Error::io("reading", "stdin", e))?;
                s
            } else {
                std::fs::read_to_string(proof).map_err(|e| Error::io("reading proof", proof, e))?
            };
            if !wks.is_empty() {
                let cp = proof_checkpoint(&json)?;
                match check_quorum(&cp, &wks, *quorum, "checkpoint") {
                    Ok(true) => {}
                    Ok(false) => return Ok(1),
                    Err(e) => {
                        eprintln!("proof does not verify: {e}");
                        return Ok(1);
                    }
                }
            }
            if auditlog::tlog_proof::is_receipt(&json) {
                return match auditlog::tlog_proof::verify_with(&json, &keys) {
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
            match transparency::verify_proof_with(&json, &keys) {
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
        TlogCommand::VerifyCheckpoints {
            key,
            proof,
            witness,
            quorum,
            rotation,
            files,
        } => verify_checkpoints(data, key, rotation, proof, witness, *quorum, files),
        #[cfg(feature = "server")]
        TlogCommand::Witness {
            key,
            log,
            state,
            listen,
            prefix,
        } => {
            let k = read_signer(key)?;
            let logs = log
                .iter()
                .map(|l| auditlog::witness::WitnessedLog::parse(l))
                .collect::<Result<Vec<_>, _>>()?;
            let w = auditlog::witness::Witness::open(k, logs, state)?;
            eprintln!("witness key: {}", w.verifier());
            auditlog::server::serve_witness_blocking(w, listen, prefix)?;
            Ok(0)
        }
    }
}

/// The signed checkpoint a proof carries (JSON `checkpoint`, or a receipt's note).
fn proof_checkpoint(text: &str) -> Result<String, Error> {
    if auditlog::tlog_proof::is_receipt(text) {
        return text
            .split_once("\n\n")
            .map(|(_, n)| n.to_string())
            .ok_or_else(|| {
                Error::Transparency("tlog-proof: no checkpoint after the proof".into())
            });
    }
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::Transparency(format!("proof is not JSON: {e}")))?;
    v.get("checkpoint")
        .and_then(|c| c.as_str())
        .map(String::from)
        .ok_or_else(|| {
            Error::Transparency(
                "the proof carries no signed checkpoint to check cosignatures on".into(),
            )
        })
}

/// `verify-checkpoints`.
fn verify_checkpoints(
    data: &Path,
    key: &str,
    rotations: &[PathBuf],
    proofs: &[PathBuf],
    witness: &[String],
    quorum: Option<usize>,
    files: &[PathBuf],
) -> Result<i32, Error> {
    use auditlog::merkle::{consistency_proof, tree_hash};
    use auditlog::tiles::TileStore;
    use auditlog::transparency::{ConsistencyProof, TreeCheckpoint};
    let keys = log_keys(key, rotations)?;
    let vk = &keys[0];
    let wks = witness_keys(witness)?;
    let mut code = 0;
    let mut cps = Vec::new();
    for f in files {
        let label = f.display().to_string();
        let text = std::fs::read_to_string(f).map_err(|e| Error::io("reading checkpoint", f, e))?;
        match TreeCheckpoint::open_with(&text, &keys) {
            Ok(cp) => {
                println!(
                    "{label}: signed by {}: size {}, root {}",
                    vk.name(),
                    cp.size,
                    base64_of(&cp.root)
                );
                if !check_quorum(&text, &wks, quorum, &label).unwrap_or_else(|e| {
                    eprintln!("{label}: {e}");
                    false
                }) {
                    code = 1;
                }
                cps.push((label, cp));
            }
            Err(e) => {
                println!(
                    "{label}: NOT a validly signed checkpoint of {}: {e}",
                    vk.name()
                );
                code = 1;
            }
        }
    }
    let mut given: Vec<ConsistencyProof> = Vec::new();
    for p in proofs {
        let t = std::fs::read_to_string(p).map_err(|e| Error::io("reading proof", p, e))?;
        given.push(serde_json::from_str(&t).map_err(|e| {
            Error::Transparency(format!("{}: not a consistency proof: {e}", p.display()))
        })?);
    }
    let store = TileStore::new(data);
    let local = if store.path().is_dir() {
        Some(store.state()?)
    } else {
        None
    };
    // Each checkpoint against the tree kept here, when it is that large.
    if let Some(st) = local {
        for (label, cp) in &cps {
            if cp.size == 0 || cp.size > st.size {
                continue;
            }
            let root = match tree_hash(&store.reader(cp.size)?, cp.size) {
                Err(e @ Error::Pruned { .. }) => {
                    println!(
                        "{label}: not compared with the tree in {} (size {}): {e}",
                        data.display(),
                        cp.size
                    );
                    continue;
                }
                r => r?,
            };
            if root == cp.root {
                println!("{label}: agrees with the tree in {}", data.display());
            } else {
                println!(
                    "FORK: {label} (size {}) disagrees with the tree in {}: its root there is {}",
                    cp.size,
                    data.display(),
                    base64_of(&root)
                );
                code = 1;
            }
        }
    }
    let forks = auditlog::witness::find_forks(&cps, |old, new| {
        if let Some(p) = given
            .iter()
            .find(|p| p.old_size == old && p.new_size == new)
        {
            return p
                .hashes
                .iter()
                .map(|h| {
                    auditlog::transparency::decode_hash(h)
                        .map_err(|e| Error::Transparency(format!("--proof: {e}")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some);
        }
        match local {
            Some(st) if new <= st.size => {
                let p = consistency_proof(&store.reader(new)?, old, new).map_err(|e| match e {
                    Error::Pruned { seq, min_index, .. } => Error::Pruned {
                        seq,
                        min_index,
                        context: format!(
                            "no consistency proof from size {old} to {new} in {} (give one \
                             with --proof): ",
                            data.display()
                        ),
                    },
                    e => e,
                })?;
                Ok(Some(p))
            }
            _ => Ok(None),
        }
    })?;
    for f in &forks {
        println!("{f}");
        code = 1;
    }
    if code == 0 {
        println!("ok: {} checkpoint(s) of {} agree", cps.len(), vk.name());
    }
    Ok(code)
}

fn base64_of(h: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h)
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
