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

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The algorithm byte of Ed25519 keys.
const ALG_ED25519: u8 = 1;
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

/// The key ID of an Ed25519 public key under `name`.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn parse_id(s: &str, what: &str) -> Result<u32> {
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(err(format!("{what}: key ID {s:?} is not 8 hex digits")));
    }
    u32::from_str_radix(s, 16).map_err(|_| err(format!("{what}: key ID {s:?} is not hex")))
}

fn decode_key(s: &str, what: &str) -> Result<Zeroizing<[u8; 32]>> {
    let raw = Zeroizing::new(
        B64.decode(s)
            .map_err(|e| err(format!("{what}: key is not base64: {e}")))?,
    );
    match raw.split_first() {
        Some((&ALG_ED25519, k)) if k.len() == 32 => {
            let mut out = Zeroizing::new([0u8; 32]);
            out.copy_from_slice(k);
            Ok(out)
        }
        Some((&ALG_ED25519, k)) => Err(err(format!(
            "{what}: an Ed25519 key is 32 bytes, this one is {}",
            k.len()
        ))),
        Some((alg, _)) => Err(err(format!(
            "{what}: unknown key algorithm {alg} (only 1, Ed25519, is known)"
        ))),
        None => Err(err(format!("{what}: the key is empty"))),
    }
}

/// A public key that checks signatures: `<name>+<hex id>+<base64(0x01 || key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: u32,
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
        let raw = decode_key(key, what)?;
        let key = VerifyingKey::from_bytes(&raw)
            .map_err(|e| err(format!("{what}: not an Ed25519 public key: {e}")))?;
        if key_id(name, key.as_bytes()) != id {
            return Err(err(format!(
                "{what}: key ID {id:08x} does not match the key and name"
            )));
        }
        Ok(VerifierKey {
            name: name.to_string(),
            id,
            key,
        })
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
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, B64.encode(raw))
    }
}

/// A private key that signs notes: `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`.
/// Its `Debug` does not show the key.
pub struct SignerKey {
    name: String,
    id: u32,
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
        check_name(name)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(&mut seed[..])
            .map_err(|e| err(format!("operating system random source failed: {e}")))?;
        Ok(Self::from_seed(name, &seed))
    }

    fn from_seed(name: &str, seed: &[u8; 32]) -> SignerKey {
        let key = SigningKey::from_bytes(seed);
        SignerKey {
            name: name.to_string(),
            id: key_id(name, key.verifying_key().as_bytes()),
            key,
        }
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
        let seed = decode_key(key, what)?;
        let k = Self::from_seed(name, &seed);
        if k.id != id {
            return Err(err(format!(
                "{what}: key ID {id:08x} does not match the key and name"
            )));
        }
        Ok(k)
    }

    /// The key as a string, for a key file (secret).
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new(vec![ALG_ED25519]);
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
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (non-empty lines, ending in a newline) into a note with one signature.
    pub fn sign(&self, text: &str) -> Result<String> {
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
                if !k.verify(out.text.as_bytes(), &raw[4..]) {
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
}
