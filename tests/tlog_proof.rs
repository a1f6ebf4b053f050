//! Offline receipts in the C2SP tlog-proof@v1 shape (`auditlog::tlog_proof`, `auditlog prove
//! --format tlog-proof`, `auditlog verify-proof`): made from a real log's signed tree, checked
//! with only the verifier key, and every change to a receipt refused with a message.
#![cfg(all(feature = "cli", feature = "transparency"))]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use auditlog::note::SignerKey;
use auditlog::tlog_proof::{self, HEADER};
use auditlog::transparency::{prove_inclusion, sign_checkpoint};
use auditlog::{HmacKey, Log, Options};

const KEY: &str = "tlog-proof-test-key-0123456789-abcdefghij";

fn opts() -> Options {
    Options::new(HmacKey::from_bytes(KEY.as_bytes()).unwrap()).segment_bytes(64 * 1024)
}

fn cli(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditlog"))
        .env_remove("AUDITLOG_DATA")
        .env("AUDIT_HMAC_KEY", KEY)
        .arg("--data")
        .arg(data)
        .args(["--segment-bytes", "65536"])
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn receipts_verify_with_the_public_key_and_changes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), opts()).unwrap();
    log.append_batch(&common::events(5, 300)).unwrap();
    let key = SignerKey::generate("audit.example.com/receipts").unwrap();
    let vk = key.verifier();
    sign_checkpoint(&log, &key).unwrap();

    for seq in [0u64, 1, 150, 255, 256, 299] {
        let p = prove_inclusion(&log, seq, None).unwrap();
        let r = tlog_proof::format(&p).unwrap();
        assert!(r.starts_with(&format!("{HEADER}\nextra ")), "{r}");
        assert!(r.contains(&format!("\nindex {seq}\n")), "{r}");
        assert!(r.ends_with(p.checkpoint.as_deref().unwrap()));
        assert!(tlog_proof::is_receipt(&r));
        let v = tlog_proof::verify(&r, &vk).unwrap();
        assert_eq!(
            (v.seq, v.timestamp_ns, v.digest.as_str(), v.checkpoint.size),
            (seq, p.timestamp_ns, p.digest.as_str(), 300)
        );
    }

    let p = prove_inclusion(&log, 150, None).unwrap();
    let good = tlog_proof::format(&p).unwrap();
    let lines: Vec<&str> = good.split('\n').collect();
    let with_line = |i: usize, new: &str| {
        let mut l = lines.clone();
        l[i] = new;
        l.join("\n")
    };
    // The leaf bytes with another timestamp: the same record index, a different leaf.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut leaf = b64.decode(&lines[1]["extra ".len()..]).unwrap();
    leaf[8] ^= 1;
    let other_ts = format!("extra {}", b64.encode(&leaf));
    let mut leaf_seq = b64.decode(&lines[1]["extra ".len()..]).unwrap();
    leaf_seq[0] ^= 1;
    let other_seq = format!("extra {}", b64.encode(&leaf_seq));
    let mut h = b64.decode(lines[3]).unwrap();
    h[0] ^= 0x80;
    let bad_hash = b64.encode(&h);
    let other_key = SignerKey::generate("audit.example.com/receipts").unwrap();
    let foreign_cp = {
        let pos = good.find("\n\n").unwrap();
        let body = &good[pos + 2..];
        let body_text = &body[..body.find("\n\n").unwrap() + 1];
        format!("{}\n\n{}", &good[..pos], other_key.sign(body_text).unwrap())
    };
    let cases: Vec<(String, &str)> = vec![
        (with_line(1, &other_ts), "does not match"),
        (with_line(1, &other_seq), "names record 151"),
        (with_line(1, "extra !!"), "not base64"),
        (with_line(1, "extra AAAA"), "3 bytes"),
        (with_line(2, "index 151"), "names record 150"),
        (with_line(2, "index 0150"), "leading zeros"),
        (with_line(2, "idx 150"), "not `index"),
        (with_line(3, &bad_hash), "does not match"),
        (with_line(3, "xyz"), "not base64 of a 32-byte hash"),
        (with_line(0, "c2sp.org/tlog-proof@v2"), "line 1"),
        (good.replacen(&format!("{}\n", lines[3]), "", 1), "too few"),
        (good.replace("\n300\n", "\n301\n"), "invalid signature"),
        (foreign_cp, "no signature by a known key"),
        (
            good[..good.find("\n\n").unwrap() + 1].to_string(),
            "no empty line",
        ),
        (
            good.replacen(&format!("{}\n", lines[1]), "", 1),
            "no `extra` line",
        ),
    ];
    for (receipt, want) in &cases {
        let e = tlog_proof::verify(receipt, &vk)
            .expect_err(&format!("accepted: {receipt}"))
            .to_string();
        assert!(e.contains(want), "want {want:?}, got {e}\n{receipt}");
    }
    // The wrong key.
    let e = tlog_proof::verify(&good, &other_key.verifier()).unwrap_err();
    assert!(e.to_string().contains("no signature by a known key"), "{e}");
    // A proof against an unsigned tree size has no receipt.
    let unsigned = prove_inclusion(&log, 3, Some(100)).unwrap();
    let e = tlog_proof::format(&unsigned).unwrap_err().to_string();
    assert!(e.contains("no signed checkpoint"), "{e}");
    drop(log);

    // Through the binary: `prove --format tlog-proof`, then `verify-proof` with the public key.
    let o = cli(
        dir.path(),
        &["prove", "--seq", "150", "--format", "tlog-proof"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), good);
    let f = dir.path().join("r150.tlog-proof");
    std::fs::write(&f, &good).unwrap();
    let verify = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_auditlog"))
            .env_remove("AUDIT_HMAC_KEY")
            .args(["verify-proof", "--key", &vk.to_string(), "--proof"])
            .arg(file)
            .output()
            .unwrap()
    };
    let o = verify(&f);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stdout).starts_with("ok: record 150 (timestamp_ns "),
        "{}",
        text(&o.stdout)
    );
    std::fs::write(&f, &cases[0].0).unwrap();
    let o = verify(&f);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("proof does not verify")
            && text(&o.stderr).contains("tlog-proof:")
    );
    let o = cli(
        dir.path(),
        &[
            "prove",
            "--seq",
            "1",
            "--size",
            "10",
            "--format",
            "tlog-proof",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("no signed checkpoint"));
}
