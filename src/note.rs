//! C2SP signed notes with Ed25519 keys (the format of Go's `golang.org/x/mod/sumdb/note`).
//!
//! ```text
//! <text, one or more lines, each ending in \n>
//! <blank line>
//! — <name> <base64(key ID (4 bytes, big-endian) || Ed25519 signature of the text)>
//! ```
//!
//! A key ID is the first four bytes of `SHA-256(name || 0x0A || 0x01 || public key)`. A
//! verifier key is written `<name>+<8 hex digits of the ID>+<base64(0x01 || public key)>`, a
//! signer key `PRIVATE+KEY+<name>+<ID>+<base64(0x01 || seed)>`. Names are non-empty and
//! contain no `+` and no whitespace.
//!
//! Witness cosignatures (C2SP tlog-cosignature, `cosignature/v1`) use the same key encoding
//! with signature type 0x04: key ID `SHA-256(name || 0x0A || 0x04 || public key)[:4]`, the
//! signature `u64 big-endian timestamp || Ed25519 signature` of
//! `"cosignature/v1\ntime <timestamp>\n" || note text` (see [`SignerKey::cosign`]).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The algorithm byte of Ed25519 keys.
const ALG_ED25519: u8 = 1;
/// The signature type byte of timestamped Ed25519 witness cosignatures (tlog-cosignature).
const ALG_COSIGNATURE_V1: u8 = 4;
/// The header line of the message a `cosignature/v1` signs.
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1\n";
/// The em dash (U+2014) and space that start a signature line.
const SIG_PREFIX: &str = "\u{2014} ";
/// At most this many signatures on a note (as Go's reader).
const MAX_SIGS: usize = 100;

fn err(m: impl Into<String>) -> Error {
    Error::Transparency(m.into())
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(err("key name is empty"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '+' || c.is_whitespace() || c.is_control())
    {
        return Err(err(format!(
            "key name {name:?} contains {c:?}; names have no `+`, whitespace or control characters"
        )));
    }
    Ok(())
}

/// What a key signs: notes (Ed25519, type 0x01) or witness cosignatures of checkpoints
/// (`cosignature/v1`, timestamped Ed25519, type 0x04).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Ed25519,
    CosignatureV1,
}

impl KeyType {
    fn byte(self) -> u8 {
        match self {
            KeyType::Ed25519 => ALG_ED25519,
            KeyType::CosignatureV1 => ALG_COSIGNATURE_V1,
        }
    }
}

/// The key ID of an Ed25519 public key under `name`.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    typed_key_id(name, KeyType::Ed25519, public)
}

/// The key ID of an Ed25519 public key of type `ty` under `name`:
/// `SHA-256(name || 0x0A || type byte || public key)[:4]`.
pub fn typed_key_id(name: &str, ty: KeyType, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ty.byte()]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The message a `cosignature/v1` of note text `text` at `timestamp` signs.
pub fn cosignature_message(timestamp: u64, text: &str) -> Vec<u8> {
    format!("{COSIGNATURE_V1_HEADER}time {timestamp}\n{text}").into_bytes()
}

fn parse_id(s: &str, what: &str) -> Result<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(format!("{what}: key ID {s:?} is not 8 hex digits")));
    }
    u32::from_str_radix(s, 16).map_err(|_| err(format!("{what}: key ID {s:?} is not hex")))
}

fn decode_key(s: &str, what: &str) -> Result<(KeyType, Zeroizing<[u8; 32]>)> {
    let raw = Zeroizing::new(
        B64.decode(s)
            .map_err(|e| err(format!("{what}: key is not base64: {e}")))?,
    );
    let ty = match raw.first() {
        Some(&ALG_ED25519) => KeyType::Ed25519,
        Some(&ALG_COSIGNATURE_V1) => KeyType::CosignatureV1,
        Some(alg) => {
            return Err(err(format!(
                "{what}: unknown key algorithm {alg} (known: 1, Ed25519 notes; 4, \
                 cosignature/v1 witness cosignatures)"
            )))
        }
        None => return Err(err(format!("{what}: the key is empty"))),
    };
    let k = &raw[1..];
    if k.len() != 32 {
        return Err(err(format!(
            "{what}: an Ed25519 key is 32 bytes, this one is {}",
            k.len()
        )));
    }
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(k);
    Ok((ty, out))
}

/// A public key that checks signatures: `<name>+<hex id>+<base64(0x01 || key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
    ty: KeyType,
    key: VerifyingKey,
}

impl VerifierKey {
    /// Parses a verifier key string.
    pub fn parse(text: &str) -> Result<VerifierKey> {
        let text = text.trim_end_matches(['\n', '\r']);
        let what = "verifier key";
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(format!(
                "{what} {text:?} is not `<name>+<hex id>+<base64 key>`"
            )));
        };
        check_name(name)?;
        let id = parse_id(id, what)?;
        let (ty, raw) = decode_key(key, what)?;
        let key = VerifyingKey::from_bytes(&raw)
            .map_err(|e| err(format!("{what}: not an Ed25519 public key: {e}")))?;
        if typed_key_id(name, ty, key.as_bytes()) != id {
            return Err(err(format!(
                "{what}: key ID {id:08x} does not match the key and name"
            )));
        }
        Ok(VerifierKey {
            name: name.to_string(),
            id,
            ty,
            key,
        })
    }

    /// Notes (0x01) or witness cosignatures (0x04).
    pub fn key_type(&self) -> KeyType {
        self.ty
    }

    /// Parses a verifier key that must be of type `ty` (`what` names it in errors).
    pub fn parse_typed(text: &str, ty: KeyType, what: &str) -> Result<VerifierKey> {
        let k = Self::parse(text).map_err(|e| err(format!("{what}: {e}")))?;
        if k.ty != ty {
            let is = |t| match t {
                KeyType::Ed25519 => "a note (log) key, type 0x01",
                KeyType::CosignatureV1 => "a cosignature/v1 witness key, type 0x04",
            };
            return Err(err(format!(
                "{what}: {}+{:08x} is {}, not {}",
                k.name,
                k.id,
                is(k.ty),
                is(ty)
            )));
        }
        Ok(k)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// Whether `sig` is this key's signature of `msg`.
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
            return false;
        };
        self.key.verify_strict(msg, &sig).is_ok()
    }

    /// Checks a signature (the bytes after the key ID) of note text `text`: for a note key,
    /// the Ed25519 signature of the text; for a cosignature key, a `timestamped_signature`
    /// (8-byte big-endian timestamp, 64-byte signature of [`cosignature_message`]). Returns
    /// the timestamp (0 for note keys), or None when it does not verify.
    fn check(&self, text: &str, sig: &[u8]) -> Option<u64> {
        match self.ty {
            KeyType::Ed25519 => self.verify(text.as_bytes(), sig).then_some(0),
            KeyType::CosignatureV1 => {
                if sig.len() != 8 + 64 {
                    return None;
                }
                let t = u64::from_be_bytes(sig[..8].try_into().expect("8 bytes"));
                if t > i64::MAX as u64 {
                    return None;
                }
                self.verify(&cosignature_message(t, text), &sig[8..])
                    .then_some(t)
            }
        }
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![self.ty.byte()];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

/// A private key that signs notes: `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
/// Its `Debug` does not show the key.
pub struct SignerKey {
    name: String,
    id: u32,
    ty: KeyType,
    key: SigningKey,
}

impl std::fmt::Debug for SignerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignerKey({}+{:08x}, <redacted>)", self.name, self.id)
    }
}

impl SignerKey {
    /// A new random key named `name`.
    pub fn generate(name: &str) -> Result<SignerKey> {
        Self::generate_typed(name, KeyType::Ed25519)
    }

    /// A new random key of type `ty` (a witness's cosigner key: [`KeyType::CosignatureV1`]).
    pub fn generate_typed(name: &str, ty: KeyType) -> Result<SignerKey> {
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..])
            .map_err(|e| err(format!("operating system random source failed: {e}")))?;
        Ok(Self::from_seed(name, ty, &seed))
    }

    fn from_seed(name: &str, ty: KeyType, seed: &[u8; 32]) -> SignerKey {
        let key = SigningKey::from_bytes(seed);
        SignerKey {
            name: name.to_string(),
            id: typed_key_id(name, ty, key.verifying_key().as_bytes()),
            ty,
            key,
        }
    }

    /// Notes (0x01) or witness cosignatures (0x04).
    pub fn key_type(&self) -> KeyType {
        self.ty
    }

    /// Parses a signer key string.
    pub fn parse(text: &str) -> Result<SignerKey> {
        let text = text.trim_end_matches(['\n', '\r']);
        let what = "signer key";
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| err(format!("{what} does not start with `PRIVATE+KEY+`")))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(err(format!(
                "{what} is not `PRIVATE+KEY+<name>+<hex id>+<base64 key>`"
            )));
        };
        check_name(name)?;
        let id = parse_id(id, what)?;
        let (ty, seed) = decode_key(key, what)?;
        let k = Self::from_seed(name, ty, &seed);
        if k.id != id {
            return Err(err(format!(
                "{what}: key ID {id:08x} does not match the key and name"
            )));
        }
        Ok(k)
    }

    /// The key as a string, for a key file (secret).
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(vec![self.ty.byte()]);
        raw.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            B64.encode(&raw[..])
        ))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            ty: self.ty,
            key: self.key.verifying_key(),
        }
    }

    /// The `cosignature/v1` signature line (`— <name> base64(key ID || timestamp ||
    /// signature)`, ending in a newline) of note text `text` at `timestamp` (POSIX seconds).
    /// Only for a cosignature key.
    pub fn cosign(&self, text: &str, timestamp: u64) -> Result<String> {
        if self.ty != KeyType::CosignatureV1 {
            return Err(err(format!(
                "key {}+{:08x} is a note key (type 0x01); cosignatures need a cosignature/v1 \
                 key (type 0x04, `auditlog keygen --cosigner`)",
                self.name, self.id
            )));
        }
        if timestamp > i64::MAX as u64 {
            return Err(err("cosignature timestamp exceeds 2^63 - 1"));
        }
        check_text(text)?;
        let sig = self.key.sign(&cosignature_message(timestamp, text));
        let mut raw = self.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(raw)))
    }

    /// Signs `text` (non-empty lines, ending in a newline) into a note with one signature.
    pub fn sign(&self, text: &str) -> Result<String> {
        if self.ty != KeyType::Ed25519 {
            return Err(err(format!(
                "key {}+{:08x} is a cosignature/v1 witness key; it only cosigns checkpoints",
                self.name, self.id
            )));
        }
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut raw = self.id.to_be_bytes().to_vec();
        raw.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n{SIG_PREFIX}{} {}\n",
            self.name,
            B64.encode(raw)
        ))
    }
}

fn check_text(text: &str) -> Result<()> {
    if !text.ends_with('\n') {
        return Err(err("note text does not end with a newline"));
    }
    if text.starts_with('\n') || text.contains("\n\n") {
        return Err(err("note text has a blank line"));
    }
    Ok(())
}

/// A signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: u32,
    /// base64 of the key ID and signature, as written.
    pub base64: String,
}

/// A note whose signature by a known key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedNote {
    /// The signed text (ending in a newline).
    pub text: String,
    /// Signatures that verified with one of the given keys.
    pub verified: Vec<NoteSignature>,
    /// Signatures by keys that were not given (not checked).
    pub unverified: Vec<NoteSignature>,
}

/// Splits a note into its text and signature lines (no signature is checked).
pub fn parse(note: &str) -> Result<(String, Vec<NoteSignature>)> {
    if !note.ends_with('\n') {
        return Err(err("signed note does not end with a newline"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or_else(|| err("signed note has no blank line before its signatures"))?;
    let text = &note[..split + 1];
    check_text(text)?;
    let mut sigs = Vec::new();
    for (i, line) in note[split + 2..].lines().enumerate() {
        let where_ = format!("signature line {}", i + 1);
        let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
            err(format!(
                "{where_} does not start with `\u{2014} ` (em dash, space)"
            ))
        })?;
        let (name, b64) = rest
            .split_once(' ')
            .ok_or_else(|| err(format!("{where_} is not `\u{2014} <name> <base64>`")))?;
        check_name(name).map_err(|e| err(format!("{where_}: {e}")))?;
        let raw = B64
            .decode(b64)
            .map_err(|e| err(format!("{where_}: signature is not base64: {e}")))?;
        if raw.len() < 5 {
            return Err(err(format!("{where_}: signature is too short")));
        }
        sigs.push(NoteSignature {
            name: name.to_string(),
            id: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
            base64: b64.to_string(),
        });
        if sigs.len() > MAX_SIGS {
            return Err(err(format!(
                "signed note has more than {MAX_SIGS} signatures"
            )));
        }
    }
    if sigs.is_empty() {
        return Err(err("signed note has no signature"));
    }
    Ok((text.to_string(), sigs))
}

/// Opens a note: at least one signature must be by one of `keys` and verify; a signature by
/// a given key that does not verify is an error.
pub fn open(note: &str, keys: &[VerifierKey]) -> Result<OpenedNote> {
    let (text, sigs) = parse(note)?;
    let mut out = OpenedNote {
        text,
        verified: Vec::new(),
        unverified: Vec::new(),
    };
    for s in sigs {
        match keys.iter().find(|k| k.name == s.name && k.id == s.id) {
            Some(k) => {
                let raw = B64.decode(&s.base64).expect("decoded by parse");
                if k.check(&out.text, &raw[4..]).is_none() {
                    return Err(err(format!(
                        "invalid signature for key {}+{:08x}",
                        s.name, s.id
                    )));
                }
                out.verified.push(s);
            }
            None => out.unverified.push(s),
        }
    }
    if out.verified.is_empty() {
        let names: Vec<String> = out
            .unverified
            .iter()
            .map(|s| format!("{}+{:08x}", s.name, s.id))
            .collect();
        return Err(err(format!(
            "no signature by a known key (signed by: {})",
            names.join(", ")
        )));
    }
    Ok(out)
}

/// A witness cosignature that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cosignature {
    /// The witness's key name and ID.
    pub name: String,
    pub id: u32,
    /// When the witness cosigned (POSIX seconds).
    pub timestamp: u64,
    /// The signature line, as written (without its newline).
    pub line: String,
}

/// The `cosignature/v1` cosignatures on `note` by the witness keys `witnesses` (type 0x04;
/// other keys are refused). Signatures by other keys are ignored; a signature by one of the
/// keys that does not verify is an error naming it. The note's own signature is not checked
/// here: open it with the log's key too.
pub fn cosignatures(note: &str, witnesses: &[VerifierKey]) -> Result<Vec<Cosignature>> {
    if let Some(k) = witnesses.iter().find(|k| k.ty != KeyType::CosignatureV1) {
        return Err(err(format!(
            "{}+{:08x} is not a cosignature/v1 witness key (type 0x04)",
            k.name, k.id
        )));
    }
    let (text, sigs) = parse(note)?;
    let mut out: Vec<Cosignature> = Vec::new();
    for s in sigs {
        let Some(k) = witnesses.iter().find(|k| k.name == s.name && k.id == s.id) else {
            continue;
        };
        let raw = B64.decode(&s.base64).expect("decoded by parse");
        let t = k.check(&text, &raw[4..]).ok_or_else(|| {
            err(format!(
                "invalid cosignature by witness {}+{:08x}",
                s.name, s.id
            ))
        })?;
        if out.iter().any(|c| c.name == s.name && c.id == s.id) {
            continue;
        }
        out.push(Cosignature {
            line: format!("{SIG_PREFIX}{} {}", s.name, s.base64),
            name: s.name,
            id: s.id,
            timestamp: t,
        });
    }
    Ok(out)
}

/// Adds signature lines (each `— <name> <base64>\n`) to a signed note, leaving out any it
/// already has.
pub fn add_signatures(note: &str, lines: &str) -> Result<String> {
    let (_, have) = parse(note)?;
    let mut out = note.to_string();
    for line in lines.lines().filter(|l| !l.is_empty()) {
        let probe = format!("x\n\n{line}\n");
        let (_, sig) = parse(&probe).map_err(|e| err(format!("signature line {line:?}: {e}")))?;
        if have.iter().any(|h| h == &sig[0]) {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// First line of a key rotation statement.
pub const ROTATION_HEADER: &str = "auditlog key rotation v1";

/// A key rotation statement: a signed note, signed by `old` and then by `new`, that says
/// `new` succeeds `old` as the log's checkpoint key:
///
/// ```text
/// auditlog key rotation v1
/// <old verifier key>
/// <new verifier key>
///
/// — <name> base64(old key ID || signature)
/// — <name> base64(new key ID || signature)
/// ```
///
/// Both are note keys (type 0x01) of the same name, the checkpoints' origin. A verifier
/// that trusts `old` trusts `new` once it holds the statement ([`follow_rotations`]): the
/// holder of the old key endorsed the new one, and the new key's own signature shows that
/// its holder made the statement (no one can claim another's key as their successor).
pub fn rotation_statement(old: &SignerKey, new: &SignerKey) -> Result<String> {
    for k in [old, new] {
        if k.ty != KeyType::Ed25519 {
            return Err(err(format!(
                "key {}+{:08x} is a cosignature/v1 witness key; only note keys (type 0x01) rotate",
                k.name, k.id
            )));
        }
    }
    if old.name != new.name {
        return Err(err(format!(
            "the new key is named {:?}, the old one {:?}: a rotated key keeps the name (the \
             checkpoints' origin)",
            new.name, old.name
        )));
    }
    if old.id == new.id {
        return Err(err("the new key is the old key"));
    }
    let text = format!(
        "{ROTATION_HEADER}\n{}\n{}\n",
        old.verifier(),
        new.verifier()
    );
    let signed = old.sign(&text)?;
    let by_new = new.sign(&text)?;
    let (_, line) = by_new
        .rsplit_once("\n\n")
        .expect("a note from sign has a blank line");
    add_signatures(&signed, line)
}

/// The keys a verifier that trusts `trusted` trusts once it holds `statements` (each a
/// [`rotation_statement`]): `trusted` first, then each successor in the order the
/// statements lead to it. A statement counts only when it names a trusted key as the old
/// one and carries valid signatures by both keys. Every statement must belong to the chain:
/// one that does not start from a key reached from `trusted`, is malformed or does not
/// verify is an error naming it (by its position, from 1).
pub fn follow_rotations(trusted: &VerifierKey, statements: &[String]) -> Result<Vec<VerifierKey>> {
    if trusted.ty != KeyType::Ed25519 {
        return Err(err(format!(
            "{}+{:08x} is a witness cosignature key, not a log key",
            trusted.name, trusted.id
        )));
    }
    struct Parsed {
        old: VerifierKey,
        new: VerifierKey,
    }
    let mut parsed = Vec::with_capacity(statements.len());
    for (i, st) in statements.iter().enumerate() {
        let what = format!("rotation statement {}", i + 1);
        let (text, _) = parse(st).map_err(|e| err(format!("{what}: {e}")))?;
        let mut lines = text.lines();
        if lines.next() != Some(ROTATION_HEADER) {
            return Err(err(format!(
                "{what}: its first line is not {ROTATION_HEADER:?}"
            )));
        }
        let (Some(o), Some(n), None) = (lines.next(), lines.next(), lines.next()) else {
            return Err(err(format!(
                "{what}: it does not hold exactly an old and a new verifier key"
            )));
        };
        let old = VerifierKey::parse_typed(o, KeyType::Ed25519, &format!("{what}: old key"))?;
        let new = VerifierKey::parse_typed(n, KeyType::Ed25519, &format!("{what}: new key"))?;
        if old.name != new.name {
            return Err(err(format!(
                "{what}: the keys are named {:?} and {:?}; a rotated key keeps the name",
                old.name, new.name
            )));
        }
        for k in [&old, &new] {
            let opened =
                open(st, std::slice::from_ref(k)).map_err(|e| err(format!("{what}: {e}")))?;
            if opened.verified.is_empty() {
                return Err(err(format!(
                    "{what}: no signature by {}+{:08x}",
                    k.name, k.id
                )));
            }
        }
        parsed.push(Parsed { old, new });
    }
    let mut keys = vec![trusted.clone()];
    let mut used = vec![false; parsed.len()];
    loop {
        let next = (0..parsed.len()).find(|&i| {
            !used[i]
                && keys
                    .iter()
                    .any(|k| k.name == parsed[i].old.name && k.id == parsed[i].old.id)
        });
        let Some(i) = next else { break };
        used[i] = true;
        let new = &parsed[i].new;
        if !keys.iter().any(|k| k.name == new.name && k.id == new.id) {
            keys.push(new.clone());
        }
    }
    if let Some(i) = used.iter().position(|u| !u) {
        return Err(err(format!(
            "rotation statement {}: its old key {}+{:08x} is not {}+{:08x} nor a key rotated \
             from it by the other statements",
            i + 1,
            parsed[i].old.name,
            parsed[i].old.id,
            trusted.name,
            trusted.id
        )));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = SignerKey::generate("example.com/log").unwrap();
        let again = SignerKey::parse(&k.to_secret_string()).unwrap();
        assert_eq!(again.verifier(), k.verifier());
        let v = VerifierKey::parse(&k.verifier().to_string()).unwrap();
        let note = k.sign("hello\nworld\n").unwrap();
        let o = open(&note, &[v]).unwrap();
        assert_eq!(o.text, "hello\nworld\n");
        assert!(format!("{k:?}").contains("redacted"));
    }

    #[test]
    fn cosignature_round_trip() {
        let log = SignerKey::generate("example.com/log").unwrap();
        let w = SignerKey::generate_typed("witness.example/w1", KeyType::CosignatureV1).unwrap();
        let again = SignerKey::parse(&w.to_secret_string()).unwrap();
        assert_eq!(again.verifier(), w.verifier());
        let wv = VerifierKey::parse(&w.verifier().to_string()).unwrap();
        assert_eq!(wv.key_type(), KeyType::CosignatureV1);
        assert!(w.sign("a\n").is_err());
        assert!(log.cosign("a\n", 1).is_err());
        let note = log.sign("a\n1\nroot\n").unwrap();
        let line = w.cosign("a\n1\nroot\n", 1_700_000_000).unwrap();
        let cosigned = add_signatures(&note, &line).unwrap();
        assert_eq!(add_signatures(&cosigned, &line).unwrap(), cosigned);
        let c = cosignatures(&cosigned, std::slice::from_ref(&wv)).unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].timestamp, 1_700_000_000);
        // The log key still opens it; a log key is refused as a witness key.
        open(&cosigned, &[log.verifier()]).unwrap();
        assert!(cosignatures(&cosigned, &[log.verifier()]).is_err());
        // A changed timestamp fails.
        let raw = B64
            .decode(line.trim_end().rsplit(' ').next().unwrap())
            .unwrap();
        let mut bad = raw.clone();
        bad[11] ^= 1;
        let forged = format!("{note}\u{2014} witness.example/w1 {}\n", B64.encode(bad));
        assert!(cosignatures(&forged, &[wv]).is_err());
    }

    #[test]
    fn rotations_chain_in_any_order_and_need_both_signatures() {
        let k0 = SignerKey::generate("log.example/rot").unwrap();
        let k1 = SignerKey::generate("log.example/rot").unwrap();
        let k2 = SignerKey::generate("log.example/rot").unwrap();
        let s01 = rotation_statement(&k0, &k1).unwrap();
        let s12 = rotation_statement(&k1, &k2).unwrap();
        // Given newest first, the chain is still followed from the trusted key.
        let keys = follow_rotations(&k0.verifier(), &[s12.clone(), s01.clone()]).unwrap();
        let ids: Vec<u32> = keys.iter().map(|k| k.id()).collect();
        assert_eq!(ids, vec![k0.id(), k1.id(), k2.id()]);
        // From k1, the statement that starts at k0 does not belong.
        let e = follow_rotations(&k1.verifier(), &[s01.clone(), s12.clone()]).unwrap_err();
        assert!(e.to_string().contains("rotation statement 1"), "{e}");
        assert_eq!(
            follow_rotations(&k1.verifier(), std::slice::from_ref(&s12))
                .unwrap()
                .len(),
            2
        );
        // Only the old key's signature: an endorsement the new key's holder never made.
        let text = format!("{ROTATION_HEADER}\n{}\n{}\n", k0.verifier(), k2.verifier());
        let one = k0.sign(&text).unwrap();
        let e = follow_rotations(&k0.verifier(), &[one]).unwrap_err();
        assert!(e.to_string().contains("no signature by a known key"), "{e}");
        // Another name, the same key, a witness key: refused when the statement is made.
        let other = SignerKey::generate("other.example/rot").unwrap();
        assert!(rotation_statement(&k0, &other).is_err());
        assert!(rotation_statement(&k0, &k0).is_err());
        let w = SignerKey::generate_typed("log.example/rot", KeyType::CosignatureV1).unwrap();
        assert!(rotation_statement(&k0, &w).is_err());
        // A statement with a third key line, or no header, is malformed.
        let extra = s01.replacen(ROTATION_HEADER, "auditlog key rotation v9", 1);
        assert!(follow_rotations(&k0.verifier(), &[extra]).is_err());
    }
}
