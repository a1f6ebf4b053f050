//! Witnessing (C2SP tlog-witness and tlog-cosignature): a witness that cosigns the
//! checkpoints of the logs it is configured with, and the log side that asks witnesses for
//! cosignatures and keeps them.
//!
//! The witness ([`Witness`]) implements `add-checkpoint` as <https://c2sp.org/tlog-witness>
//! says. The request body is
//!
//! ```text
//! old <size>\n
//! <base64 consistency proof hash>\n      zero to 63 lines (RFC 6962 §2.1.2)
//! \n
//! <the signed checkpoint note>
//! ```
//!
//! and the answer one of: 200 with the `cosignature/v1` signature line; 400 for a malformed
//! body or an old size above the checkpoint's; 404 for an origin it does not witness; 403
//! when no signature verifies with the log's key; 409 with its size (`text/x.tlog.size`) when
//! `old` is not the size it last cosigned, or (plain text) when the sizes are equal but the
//! roots differ; 422 when the consistency proof does not verify. For each origin it keeps
//! the latest checkpoint it cosigned in `<state dir>/logs/<hex SHA-256 of the origin>`
//! (written temp, fsync, rename, fsync of the directory, before the answer; checks and write
//! under one lock, so two requests can never roll the size back). A validly signed
//! checkpoint that conflicts with the kept one (a fork, or a failed proof) is kept as
//! evidence in `<state dir>/evidence/`. The state directory is locked (`flock`) by one
//! witness process at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::chain::{hex, Hash};
use crate::error::{Error, Result};
use crate::merkle::{empty_root, verify_consistency};
use crate::note::{self, KeyType, SignerKey, VerifierKey};
use crate::transparency::TreeCheckpoint;

/// Most consistency proof lines a request may carry (the spec's limit).
pub const MAX_PROOF_LINES: usize = 63;
/// The content type of a 409 answer's body (the witness's size and a newline).
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
/// Largest request body accepted (a checkpoint with many signatures and 63 hashes fits).
pub const MAX_BODY: usize = 64 << 10;

fn err(m: impl Into<String>) -> Error {
    Error::Transparency(m.into())
}

/// A log the witness cosigns for: its origin line and the key(s) that sign its checkpoints.
#[derive(Debug, Clone)]
pub struct WitnessedLog {
    pub origin: String,
    pub keys: Vec<VerifierKey>,
}

impl WitnessedLog {
    /// Parses `VKEY` (the origin is the key's name) or `ORIGIN VKEY`.
    pub fn parse(spec: &str) -> Result<WitnessedLog> {
        let spec = spec.trim();
        let (origin, key) = match spec.rsplit_once(' ') {
            Some((o, k)) => (o.trim().to_string(), k),
            None => (String::new(), spec),
        };
        let key = VerifierKey::parse_typed(key, KeyType::Ed25519, "witnessed log key")?;
        let origin = if origin.is_empty() {
            key.name().to_string()
        } else {
            origin
        };
        Ok(WitnessedLog {
            origin,
            keys: vec![key],
        })
    }
}

/// Why the witness refused a checkpoint; each maps to the HTTP answer the spec gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the body is malformed, or its old size is above the checkpoint's size.
    BadRequest(String),
    /// 403: no signature by the log's key verifies.
    Forbidden(String),
    /// 404: the witness does not witness this origin.
    UnknownOrigin(String),
    /// 409: `old` is not the size the witness last cosigned (it is `size`).
    SizeMismatch { size: u64 },
    /// 409: the checkpoint has the witness's size but another root (a fork).
    RootMismatch(String),
    /// 422: the consistency proof does not verify.
    BadProof(String),
}

impl Refusal {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Forbidden(_) => 403,
            Refusal::UnknownOrigin(_) => 404,
            Refusal::SizeMismatch { .. } | Refusal::RootMismatch(_) => 409,
            Refusal::BadProof(_) => 422,
        }
    }

    /// The content type of the body.
    pub fn content_type(&self) -> &'static str {
        match self {
            Refusal::SizeMismatch { .. } => SIZE_CONTENT_TYPE,
            _ => "text/plain; charset=utf-8",
        }
    }

    /// The body: the witness's size and a newline for a size mismatch, else the reason.
    pub fn body(&self) -> String {
        match self {
            Refusal::SizeMismatch { size } => format!("{size}\n"),
            Refusal::BadRequest(m)
            | Refusal::Forbidden(m)
            | Refusal::UnknownOrigin(m)
            | Refusal::RootMismatch(m)
            | Refusal::BadProof(m) => format!("{m}\n"),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SizeMismatch { size } => {
                write!(f, "the witness last cosigned size {size}")
            }
            Refusal::BadRequest(m)
            | Refusal::Forbidden(m)
            | Refusal::UnknownOrigin(m)
            | Refusal::RootMismatch(m)
            | Refusal::BadProof(m) => f.write_str(m),
        }
    }
}

/// A parsed `add-checkpoint` request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpoint {
    pub old: u64,
    pub proof: Vec<Hash>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: String,
}

impl AddCheckpoint {
    /// The request body.
    pub fn to_body(&self) -> String {
        let mut s = format!("old {}\n", self.old);
        for h in &self.proof {
            s.push_str(&B64.encode(h));
            s.push('\n');
        }
        s.push('\n');
        s.push_str(&self.checkpoint);
        s
    }

    /// Parses a request body; errors name the line.
    pub fn parse(body: &[u8]) -> std::result::Result<AddCheckpoint, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
        let (head, checkpoint) = text
            .split_once("\n\n")
            .ok_or("body has no empty line before the checkpoint")?;
        let mut lines = head.split('\n');
        let first = lines.next().unwrap_or_default();
        let n = first
            .strip_prefix("old ")
            .ok_or_else(|| format!("line 1 {first:?} is not `old <size>`"))?;
        let old = n
            .parse::<u64>()
            .ok()
            .filter(|_| n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0')))
            .ok_or_else(|| {
                format!("line 1: old size {n:?} is not a decimal number without leading zeros")
            })?;
        let mut proof = Vec::new();
        for (i, l) in lines.enumerate() {
            let h = B64
                .decode(l)
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| {
                    format!(
                        "line {}: consistency proof hash {l:?} is not base64 of 32 bytes",
                        i + 2
                    )
                })?;
            proof.push(h);
        }
        if proof.len() > MAX_PROOF_LINES {
            return Err(format!(
                "{} consistency proof lines; at most {MAX_PROOF_LINES} are allowed",
                proof.len()
            ));
        }
        if checkpoint.is_empty() {
            return Err("the checkpoint after the empty line is missing".into());
        }
        Ok(AddCheckpoint {
            old,
            proof,
            checkpoint: checkpoint.to_string(),
        })
    }
}

/// What the witness keeps per origin: the latest checkpoint it cosigned.
#[derive(Debug, Clone)]
struct Kept {
    size: u64,
    root: Hash,
}

/// A witness: its cosigner key, the logs it witnesses and its state directory.
pub struct Witness {
    key: SignerKey,
    logs: BTreeMap<String, Vec<VerifierKey>>,
    dir: PathBuf,
    /// Serializes check-then-persist (the spec's atomicity), and caches the kept state.
    state: parking_lot::Mutex<BTreeMap<String, Kept>>,
    /// Held for its `flock`: one witness process per state directory.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("key", &self.key)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .field("dir", &self.dir)
            .finish()
    }
}

/// The file under `logs/` of the state directory that keeps `origin`'s latest checkpoint.
pub fn state_file_name(origin: &str) -> String {
    hex(Sha256::digest(origin.as_bytes()).as_slice())
}

impl Witness {
    /// Opens (creating it if needed) the state directory `dir` and loads the state of each
    /// log. `key` must be a cosignature/v1 key (`auditlog keygen --cosigner`).
    pub fn open(key: SignerKey, logs: Vec<WitnessedLog>, dir: &Path) -> Result<Witness> {
        if key.key_type() != KeyType::CosignatureV1 {
            return Err(err(format!(
                "witness key {}+{:08x} is a note key; a witness needs a cosignature/v1 key \
                 (`auditlog keygen --cosigner --name NAME`)",
                key.name(),
                key.id()
            )));
        }
        if logs.is_empty() {
            return Err(err("the witness has no logs to witness (give --log VKEY)"));
        }
        let mut by_origin: BTreeMap<String, Vec<VerifierKey>> = BTreeMap::new();
        for l in logs {
            by_origin.entry(l.origin).or_default().extend(l.keys);
        }
        for d in [dir.to_path_buf(), dir.join("logs"), dir.join("evidence")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io("creating", &d, e))?;
        }
        let lock_path = dir.join("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("opening", &lock_path, e))?;
        // As `Log::open`: a process forked meanwhile holds a copy of a closed witness's lock
        // descriptor until it execs, so a busy lock is retried for a moment.
        let mut waited = std::time::Duration::ZERO;
        let step = std::time::Duration::from_millis(5);
        loop {
            match lock.try_lock() {
                Err(std::fs::TryLockError::WouldBlock)
                    if waited < std::time::Duration::from_millis(200) =>
                {
                    std::thread::sleep(step);
                    waited += step;
                }
                r => break r,
            }
        }
        .map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => err(format!(
                "witness state directory {} is in use by another witness process (lock \
                     file {})",
                dir.display(),
                lock_path.display()
            )),
            std::fs::TryLockError::Error(e) => Error::io("locking", &lock_path, e),
        })?;
        let mut state = BTreeMap::new();
        for origin in by_origin.keys() {
            let p = dir.join("logs").join(state_file_name(origin));
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("reading witness state", &p, e)),
            };
            let bad = |m: String| err(format!("witness state {} ({origin}): {m}", p.display()));
            let (body, _) = note::parse(&text).map_err(|e| bad(e.to_string()))?;
            let cp = TreeCheckpoint::parse_body(&body).map_err(|e| bad(e.to_string()))?;
            if cp.origin != *origin {
                return Err(bad(format!("it holds origin {:?}", cp.origin)));
            }
            state.insert(
                origin.clone(),
                Kept {
                    size: cp.size,
                    root: cp.root,
                },
            );
        }
        Ok(Witness {
            key,
            logs: by_origin,
            dir: dir.to_path_buf(),
            state: parking_lot::Mutex::new(state),
            _lock: lock,
        })
    }

    /// The witness's verifier key (type 0x04), to give to the logs' clients.
    pub fn verifier(&self) -> VerifierKey {
        self.key.verifier()
    }

    /// The size the witness last cosigned for `origin` (0 when never).
    pub fn size_of(&self, origin: &str) -> u64 {
        self.state.lock().get(origin).map_or(0, |k| k.size)
    }

    /// The latest checkpoint cosigned for `origin`, with the witness's cosignature, if any.
    pub fn cosigned(&self, origin: &str) -> Result<Option<String>> {
        let p = self.dir.join("logs").join(state_file_name(origin));
        match std::fs::read_to_string(&p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading witness state", &p, e)),
        }
    }

    /// Handles an `add-checkpoint` body at time `now` (POSIX seconds): the cosignature line
    /// (ending in a newline), or why not. `Err` is a failure of the witness itself (its
    /// state could not be written: answer 500 and cosign nothing).
    pub fn add_checkpoint(
        &self,
        body: &[u8],
        now: u64,
    ) -> Result<std::result::Result<String, Refusal>> {
        let req = match AddCheckpoint::parse(body) {
            Ok(r) => r,
            Err(m) => return Ok(Err(Refusal::BadRequest(m))),
        };
        let (text, _) = match note::parse(&req.checkpoint) {
            Ok(x) => x,
            Err(e) => return Ok(Err(Refusal::BadRequest(format!("checkpoint: {e}")))),
        };
        let cp = match TreeCheckpoint::parse_body(&text) {
            Ok(c) => c,
            Err(e) => return Ok(Err(Refusal::BadRequest(e.to_string()))),
        };
        let Some(keys) = self.logs.get(&cp.origin) else {
            return Ok(Err(Refusal::UnknownOrigin(format!(
                "this witness does not witness origin {:?}",
                cp.origin
            ))));
        };
        if let Err(e) = note::open(&req.checkpoint, keys) {
            return Ok(Err(Refusal::Forbidden(format!(
                "checkpoint of {:?}: {e}",
                cp.origin
            ))));
        }
        if req.old > cp.size {
            return Ok(Err(Refusal::BadRequest(format!(
                "old size {} is above the checkpoint's size {}",
                req.old, cp.size
            ))));
        }
        let mut state = self.state.lock();
        let kept = state.get(&cp.origin).cloned();
        let kept_size = kept.as_ref().map_or(0, |k| k.size);
        if req.old != kept_size {
            return Ok(Err(Refusal::SizeMismatch { size: kept_size }));
        }
        match &kept {
            None => {
                if !req.proof.is_empty() {
                    return Ok(Err(Refusal::BadRequest(format!(
                        "old size 0 takes an empty consistency proof, this one has {} lines",
                        req.proof.len()
                    ))));
                }
                if cp.size == 0 && cp.root != empty_root() {
                    self.keep_evidence(&cp, &req.checkpoint, "empty-root")?;
                    return Ok(Err(Refusal::BadProof(
                        "a checkpoint of size 0 must have the empty tree's root".into(),
                    )));
                }
            }
            Some(k) if k.size == cp.size => {
                if k.root != cp.root {
                    self.keep_evidence(&cp, &req.checkpoint, "fork")?;
                    return Ok(Err(Refusal::RootMismatch(format!(
                        "fork: the witness cosigned size {} of {:?} with root {}, this \
                         checkpoint has root {}",
                        k.size,
                        cp.origin,
                        B64.encode(k.root),
                        B64.encode(cp.root)
                    ))));
                }
                if !req.proof.is_empty() {
                    return Ok(Err(Refusal::BadProof(
                        "equal sizes take an empty consistency proof".into(),
                    )));
                }
            }
            Some(k) => {
                if let Err(e) = verify_consistency(k.size, cp.size, &k.root, &cp.root, &req.proof) {
                    self.keep_evidence(&cp, &req.checkpoint, "bad-proof")?;
                    return Ok(Err(Refusal::BadProof(format!(
                        "no consistency from the cosigned size {} to {}: {e}",
                        k.size, cp.size
                    ))));
                }
            }
        }
        let line = self.key.cosign(&text, now)?;
        let kept_note = note::add_signatures(&req.checkpoint, &line)?;
        crate::segment::write_atomic(
            "witness.state",
            &self.dir.join("logs"),
            &state_file_name(&cp.origin),
            kept_note.as_bytes(),
        )?;
        state.insert(
            cp.origin.clone(),
            Kept {
                size: cp.size,
                root: cp.root,
            },
        );
        Ok(Ok(line))
    }

    /// Keeps a validly signed checkpoint that conflicts with the kept state (evidence of a
    /// misbehaving log).
    fn keep_evidence(&self, cp: &TreeCheckpoint, signed: &str, why: &str) -> Result<()> {
        let name = format!(
            "{}-{}-{}-{}",
            state_file_name(&cp.origin),
            cp.size,
            why,
            hex(Sha256::digest(signed.as_bytes()).as_slice())
        );
        crate::segment::write_atomic(
            "witness.evidence",
            &self.dir.join("evidence"),
            &name,
            signed.as_bytes(),
        )
    }
}

/// The seconds since the Unix epoch now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the library says about a set of signed checkpoints of one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disagreement {
    /// Two checkpoints of the same size with different roots.
    SameSizeDifferentRoot { a: String, b: String, size: u64 },
    /// No valid consistency proof from the smaller to the larger.
    Inconsistent {
        a: String,
        b: String,
        old: u64,
        new: u64,
        why: String,
    },
}

impl std::fmt::Display for Disagreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Disagreement::SameSizeDifferentRoot { a, b, size } => write!(
                f,
                "FORK: {a} and {b} are both signed checkpoints of size {size} with different \
                 root hashes"
            ),
            Disagreement::Inconsistent {
                a,
                b,
                old,
                new,
                why,
            } => write!(
                f,
                "FORK: no valid consistency proof from {a} (size {old}) to {b} (size {new}): \
                 {why}"
            ),
        }
    }
}

/// Checks signed checkpoints `(label, checkpoint)` of one origin pairwise: equal sizes must
/// have equal roots, and each must be a prefix of the next larger one, proven by a
/// consistency proof from `prove(old, new)` (None when no proof is available: the pair is
/// reported as [`Disagreement::Inconsistent`] with that reason).
pub fn find_forks(
    cps: &[(String, TreeCheckpoint)],
    mut prove: impl FnMut(u64, u64) -> Result<Option<Vec<Hash>>>,
) -> Result<Vec<Disagreement>> {
    let mut out = Vec::new();
    let mut sorted: Vec<&(String, TreeCheckpoint)> = cps.iter().collect();
    sorted.sort_by_key(|(_, c)| c.size);
    for (i, (la, a)) in sorted.iter().enumerate() {
        for (lb, b) in &sorted[i + 1..] {
            if a.origin != b.origin {
                continue;
            }
            if a.size == b.size {
                if a.root != b.root {
                    out.push(Disagreement::SameSizeDifferentRoot {
                        a: la.clone(),
                        b: lb.clone(),
                        size: a.size,
                    });
                }
                continue;
            }
            let why = if a.size == 0 {
                (a.root != empty_root()).then(|| "a size 0 checkpoint with a non-empty root".into())
            } else {
                match prove(a.size, b.size)? {
                    None => Some(format!(
                        "no tree of size {} here to make a consistency proof from",
                        b.size
                    )),
                    Some(p) => verify_consistency(a.size, b.size, &a.root, &b.root, &p)
                        .err()
                        .map(|e| e.to_string()),
                }
            };
            if let Some(why) = why {
                out.push(Disagreement::Inconsistent {
                    a: la.clone(),
                    b: lb.clone(),
                    old: a.size,
                    new: b.size,
                    why,
                });
            }
        }
    }
    Ok(out)
}

/// A witness the log asks for cosignatures: its submission prefix (`add-checkpoint` is
/// appended) and its cosignature/v1 verifier key.
#[derive(Debug, Clone)]
pub struct WitnessTarget {
    pub url: String,
    pub key: VerifierKey,
}

impl WitnessTarget {
    /// Parses `URL VKEY` (the submission prefix, a space, the witness's verifier key).
    pub fn parse(spec: &str) -> Result<WitnessTarget> {
        let (url, key) = spec.trim().split_once(' ').ok_or_else(|| {
            err(format!(
                "witness {spec:?} is not `URL VKEY` (the submission prefix, a space, the \
                 witness's cosignature/v1 verifier key)"
            ))
        })?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(err(format!(
                "witness URL {url:?} is not http:// or https://"
            )));
        }
        let key = VerifierKey::parse_typed(key.trim(), KeyType::CosignatureV1, "witness key")?;
        Ok(WitnessTarget {
            url: url.trim_end_matches('/').to_string(),
            key,
        })
    }
}

/// One witness's answer to the log.
#[derive(Debug, Clone)]
pub struct WitnessOutcome {
    pub witness: String,
    /// The verified cosignature line, or why there is none.
    pub result: std::result::Result<note::Cosignature, String>,
}

/// Asks each witness to cosign `signed` (the log's signed checkpoint of its current tree),
/// proving consistency from the size the witness holds with `prove(old, new)`. A 409 with
/// the witness's size is retried once from that size. Only cosignatures that verify with the
/// witness's key are kept.
#[cfg(feature = "server")]
pub fn request_cosignatures(
    signed: &str,
    witnesses: &[WitnessTarget],
    first_old: impl Fn(&WitnessTarget) -> u64,
    prove: impl Fn(u64, u64) -> Result<Vec<Hash>>,
    timeout: std::time::Duration,
) -> Result<Vec<WitnessOutcome>> {
    let (text, _) = note::parse(signed)?;
    let cp = TreeCheckpoint::parse_body(&text)?;
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build();
    let mut out = Vec::new();
    for w in witnesses {
        let url = format!("{}/add-checkpoint", w.url);
        let ask = |old: u64| -> std::result::Result<(u16, String, String), String> {
            let proof = if old == 0 || old == cp.size {
                Vec::new()
            } else {
                prove(old, cp.size).map_err(|e| e.to_string())?
            };
            let body = AddCheckpoint {
                old,
                proof,
                checkpoint: signed.to_string(),
            }
            .to_body();
            let resp = match agent
                .post(&url)
                .set("Content-Type", "text/plain; charset=utf-8")
                .send_string(&body)
            {
                Ok(r) => r,
                Err(ureq::Error::Status(_, r)) => r,
                Err(ureq::Error::Transport(t)) => return Err(t.to_string()),
            };
            let status = resp.status();
            let ct = resp.content_type().to_string();
            let mut b = String::new();
            std::io::Read::read_to_string(
                &mut std::io::Read::take(resp.into_reader(), MAX_BODY as u64),
                &mut b,
            )
            .map_err(|e| format!("{url}: reading the answer: {e}"))?;
            Ok((status, ct, b))
        };
        let mut old = first_old(w).min(cp.size);
        let mut tries = 0;
        let result = loop {
            tries += 1;
            let (status, ct, body) = match ask(old) {
                Ok(x) => x,
                Err(e) => break Err(e),
            };
            match status {
                200 => {
                    let joined = format!("{signed}{body}");
                    break match note::cosignatures(&joined, std::slice::from_ref(&w.key)) {
                        Ok(mut c) if !c.is_empty() => Ok(c.remove(0)),
                        Ok(_) => Err(format!(
                            "{url}: 200 but no cosignature by {}+{:08x} in the answer",
                            w.key.name(),
                            w.key.id()
                        )),
                        Err(e) => Err(format!("{url}: {e}")),
                    };
                }
                409 if ct == SIZE_CONTENT_TYPE && tries == 1 => {
                    let n = body.trim_end_matches('\n');
                    match n.parse::<u64>() {
                        Ok(n) if n <= cp.size => old = n,
                        Ok(n) => {
                            break Err(format!(
                                "{url}: the witness holds size {n}, above this checkpoint's {} \
                                 (it has seen a larger tree of this origin: a fork, or this \
                                 log was rolled back)",
                                cp.size
                            ))
                        }
                        Err(_) => break Err(format!("{url}: 409 with a bad size body {body:?}")),
                    }
                }
                s => break Err(format!("{url}: {s}: {}", body.trim_end())),
            }
        };
        out.push(WitnessOutcome {
            witness: format!("{}+{:08x}", w.key.name(), w.key.id()),
            result,
        });
    }
    Ok(out)
}
