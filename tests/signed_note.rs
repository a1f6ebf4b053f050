//! C2SP signed notes (`auditlog::note`) against the published test vector (the key and
//! signature of the signed-note spec and of Go's `sumdb/note` tests), and bad input.
#![cfg(feature = "transparency")]

use auditlog::note::{key_id, open, parse, SignerKey, VerifierKey};

const SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const SIGNED: &str = "If you think cryptography is the answer to your problem,\n\
                      then you don't know what your problem is.\n\
                      \n\
                      \u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn the_published_vector() {
    let s = SignerKey::parse(SKEY).unwrap();
    assert_eq!(s.verifier().to_string(), VKEY);
    assert_eq!(s.id(), 0xc74f20a3);
    assert_eq!(&*s.to_secret_string(), SKEY);
    // Ed25519 is deterministic: signing the text gives the vector's note byte for byte.
    assert_eq!(s.sign(TEXT).unwrap(), SIGNED);
    let v = VerifierKey::parse(VKEY).unwrap();
    let o = open(SIGNED, std::slice::from_ref(&v)).unwrap();
    assert_eq!(o.text, TEXT);
    assert_eq!(o.verified.len(), 1);
    assert_eq!(o.verified[0].name, "PeterNeumann");
}

#[test]
fn tampering_and_unknown_keys_are_refused() {
    let v = VerifierKey::parse(VKEY).unwrap();
    let changed = SIGNED.replace("answer", "ANSWER");
    let e = open(&changed, std::slice::from_ref(&v))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("invalid signature for key PeterNeumann+c74f20a3"),
        "{e}"
    );
    let other = SignerKey::generate("other").unwrap().verifier();
    let e = open(SIGNED, &[other]).unwrap_err().to_string();
    assert!(
        e.contains("no signature by a known key") && e.contains("PeterNeumann+c74f20a3"),
        "{e}"
    );
    // A second signature by an unknown key is kept aside, not an error.
    let extra = SignerKey::generate("witness").unwrap();
    let sig2 = extra.sign(TEXT).unwrap();
    let line2 = sig2.lines().last().unwrap();
    let both = format!("{SIGNED}{line2}\n");
    let o = open(&both, std::slice::from_ref(&v)).unwrap();
    assert_eq!((o.verified.len(), o.unverified.len()), (1, 1));
    let o = open(&both, &[v.clone(), extra.verifier()]).unwrap();
    assert_eq!(o.verified.len(), 2);
}

#[test]
fn malformed_notes_and_keys() {
    for (note, want) in [
        ("", "does not end with a newline"),
        ("text\n", "no blank line"),
        ("text\n\n", "no signature"),
        ("text\n\n- PeterNeumann AAAA\n", "em dash"),
        ("text\n\n\u{2014} PeterNeumann\n", "is not"),
        ("text\n\n\u{2014} PeterNeumann !!!\n", "not base64"),
        ("text\n\n\u{2014} PeterNeumann AAAA\n", "too short"),
        ("a\n\nb\n\n\u{2014} x AAAAAAAA\n", "blank line"),
    ] {
        let e = parse(note).unwrap_err().to_string();
        assert!(e.contains(want), "{note:?}: {e}");
    }
    for (key, want) in [
        ("PeterNeumann+c74f20a3", "is not"),
        (
            "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "does not match",
        ),
        (
            "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "8 hex digits",
        ),
        (
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "unknown key algorithm",
        ),
        (
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy",
            "32 bytes",
        ),
        (
            "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "whitespace",
        ),
        (
            "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
            "empty",
        ),
    ] {
        let e = VerifierKey::parse(key).unwrap_err().to_string();
        assert!(e.contains(want), "{key:?}: {e}");
    }
    assert!(SignerKey::parse(VKEY)
        .unwrap_err()
        .to_string()
        .contains("PRIVATE+KEY+"));
    let e = SignerKey::parse(&SKEY.replace("c74f20a3", "c74f20a4")).unwrap_err();
    assert!(e.to_string().contains("does not match"), "{e}");
    assert!(SignerKey::generate("a+b").is_err());
    let k = SignerKey::generate("n").unwrap();
    assert!(k.sign("no newline").is_err());
    assert!(k.sign("a\n\nb\n").is_err());
    // The key ID is SHA-256(name || 0x0A || 0x01 || key)[:4].
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode("ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
        .unwrap();
    let public: [u8; 32] = raw[1..].try_into().unwrap();
    assert_eq!(key_id("PeterNeumann", &public), 0xc74f20a3);
    assert_ne!(key_id("PeterNeumanm", &public), 0xc74f20a3);
}
