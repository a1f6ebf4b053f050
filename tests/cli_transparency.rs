//! `auditlog keygen | checkpoint --signed | prove | prove-consistency | verify-proof` end to
//! end through the binary: a signer key, signed checkpoints as the log grows, inclusion proofs
//! by seq and by event id, consistency proofs, and verification with only the published
//! verifier key; and the failures: a tampered proof, the wrong key, a checkpoint that does not
//! extend the last signed one.
#![cfg(all(feature = "cli", feature = "transparency"))]

#[path = "common/cli.rs"]
mod cli_run;
mod common;

use std::path::Path;
use std::process::{Command, Output};

use cli_run::{err, ok, out, run};

use serde_json::Value;

const KEY: &str = "cli-transparency-key-0123456789-abcdefghij";

fn cli(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
    c.env_remove("AUDITLOG_DATA")
        .env("AUDIT_HMAC_KEY", KEY)
        .arg("--data")
        .arg(data)
        .args(["--segment-bytes", "65536"])
        .args(args);
    c
}

/// A command that needs neither a data directory nor the HMAC key.
fn bare(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
    c.env_remove("AUDITLOG_DATA")
        .env_remove("AUDIT_HMAC_KEY")
        .args(args);
    c
}

fn append(data: &Path, seed: u64, n: usize) -> Vec<Value> {
    // Event ids unique across seeds, so `prove --event-id` names one record.
    let input: String = common::events(seed, n)
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut v = serde_json::to_value(e).unwrap();
            v["event_id"] = Value::String(format!("evt-s{seed}-{i}"));
            format!("{v}\n")
        })
        .collect();
    ok(&run(cli(data, &["append", "--receipts"]), &input))
        .lines()
        .map(|l| serde_json::from_str(l).expect("a receipt per line"))
        .collect()
}

fn verify_proof(vkey: &str, proof: &Path) -> Output {
    run(
        bare(&[
            "verify-proof",
            "--key",
            vkey,
            "--proof",
            proof.to_str().unwrap(),
        ]),
        "",
    )
}

#[test]
fn keygen_sign_prove_and_verify_with_only_the_public_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let keyf = tmp.path().join("signer.key");
    let vkey = ok(&run(
        bare(&[
            "keygen",
            "--name",
            "audit.example.com/cli",
            "--out",
            keyf.to_str().unwrap(),
        ]),
        "",
    ))
    .trim()
    .to_string();
    assert!(vkey.starts_with("audit.example.com/cli+"), "{vkey}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&keyf).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // keygen refuses to overwrite the key.
    let again = run(
        bare(&["keygen", "--name", "x", "--out", keyf.to_str().unwrap()]),
        "",
    );
    assert!(!again.status.success());
    assert!(err(&again).contains("signer key"), "{}", err(&again));

    let receipts = append(&data, 1, 40);
    let k = keyf.to_str().unwrap();
    let cp1 = ok(&run(
        cli(&data, &["checkpoint", "--signed", "--key", k]),
        "",
    ));
    assert!(cp1.starts_with("audit.example.com/cli\n40\n"), "{cp1}");
    assert!(cp1.contains("\n\n— audit.example.com/cli "), "{cp1}");
    append(&data, 2, 300);
    let cp2 = ok(&run(
        cli(&data, &["checkpoint", "--signed", "--key", k]),
        "",
    ));
    assert!(cp2.starts_with("audit.example.com/cli\n340\n"), "{cp2}");

    // An inclusion proof by seq, and by event id, against the latest signed checkpoint.
    let by_seq = ok(&run(cli(&data, &["prove", "--seq", "17"]), ""));
    let p: Value = serde_json::from_str(&by_seq).unwrap();
    assert_eq!(p["kind"], "inclusion");
    assert_eq!(p["leaf_index"], 17);
    assert_eq!(p["tree_size"], 340);
    assert_eq!(p["checkpoint"].as_str().unwrap(), cp2);
    let id = receipts[17]["event_id"]
        .as_str()
        .expect("receipts name the event id");
    let by_id = ok(&run(cli(&data, &["prove", "--event-id", id]), ""));
    assert_eq!(by_seq, by_id);
    let missing = run(cli(&data, &["prove", "--event-id", "no-such-event"]), "");
    assert_eq!(missing.status.code(), Some(2));
    assert!(err(&missing).contains("no-such-event"), "{}", err(&missing));
    let neither = run(cli(&data, &["prove"]), "");
    assert!(!neither.status.success());

    let inc = tmp.path().join("inclusion.json");
    std::fs::write(&inc, &by_seq).unwrap();
    let v = verify_proof(&vkey, &inc);
    assert!(
        ok(&v).starts_with("ok: inclusion in the tree of size 340 signed by audit.example.com/cli"),
        "{}",
        out(&v)
    );
    // The key may also come from a file.
    let vkf = tmp.path().join("verifier.txt");
    std::fs::write(&vkf, format!("{vkey}\n")).unwrap();
    ok(&verify_proof(vkf.to_str().unwrap(), &inc));

    // Consistency between the two signed sizes.
    let con = ok(&run(cli(&data, &["prove-consistency", "40", "340"]), ""));
    let c: Value = serde_json::from_str(&con).unwrap();
    assert_eq!(c["kind"], "consistency");
    assert_eq!(c["checkpoint"].as_str().unwrap(), cp2);
    // Its old root is the first signed checkpoint's.
    let cp1_root = cp1.lines().nth(2).unwrap();
    assert_eq!(c["old_root"].as_str().unwrap(), cp1_root);
    let conf = tmp.path().join("consistency.json");
    std::fs::write(&conf, &con).unwrap();
    assert!(ok(&verify_proof(&vkey, &conf))
        .starts_with("ok: the tree of size 40 is a prefix of the tree of size 340"));

    // A proof against an older, unsigned size carries no checkpoint: it does not verify.
    let old = ok(&run(
        cli(&data, &["prove", "--seq", "3", "--size", "100"]),
        "",
    ));
    let oldf = tmp.path().join("old.json");
    std::fs::write(&oldf, &old).unwrap();
    let o = verify_proof(&vkey, &oldf);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("no signed checkpoint"), "{}", err(&o));

    // Tampered proofs: a path hash, the digest, the checkpoint's signed size.
    let mut bad = p.clone();
    let h = bad["hashes"][0].as_str().unwrap().to_string();
    let flipped = if h.starts_with('A') { "B" } else { "A" };
    bad["hashes"][0] = Value::String(format!("{flipped}{}", &h[1..]));
    let mut bad_digest = p.clone();
    bad_digest["digest"] = Value::String("00".repeat(32));
    let mut bad_cp = p.clone();
    bad_cp["checkpoint"] = Value::String(cp2.replacen("\n340\n", "\n341\n", 1));
    let mut bad_con = c.clone();
    bad_con["old_size"] = Value::from(41);
    for (what, b, needle) in [
        ("path hash", &bad, "root"),
        ("digest", &bad_digest, "leaf_hash"),
        ("checkpoint", &bad_cp, "signature"),
        ("consistency old size", &bad_con, ""),
    ] {
        let f = tmp.path().join("bad.json");
        std::fs::write(&f, b.to_string()).unwrap();
        let o = verify_proof(&vkey, &f);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", out(&o));
        assert!(
            err(&o).contains("proof does not verify"),
            "{what}: {}",
            err(&o)
        );
        assert!(err(&o).contains(needle), "{what}: {}", err(&o));
    }

    // The wrong key: same name, other key; and another name.
    let other = tmp.path().join("other.key");
    let other_vkey = ok(&run(
        bare(&[
            "keygen",
            "--name",
            "audit.example.com/cli",
            "--out",
            other.to_str().unwrap(),
        ]),
        "",
    ))
    .trim()
    .to_string();
    let o = verify_proof(&other_vkey, &inc);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("proof does not verify"), "{}", err(&o));
    let third = tmp.path().join("third.key");
    let third_vkey = ok(&run(
        bare(&[
            "keygen",
            "--name",
            "elsewhere.example/log",
            "--out",
            third.to_str().unwrap(),
        ]),
        "",
    ))
    .trim()
    .to_string();
    assert_eq!(verify_proof(&third_vkey, &inc).status.code(), Some(1));
    let bad_key = verify_proof("not-a-verifier-key", &inc);
    assert_eq!(bad_key.status.code(), Some(2), "{}", err(&bad_key));

    // Signing with another name than the last signed checkpoint's is refused.
    let o = run(
        cli(
            &data,
            &["checkpoint", "--signed", "--key", third.to_str().unwrap()],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("sign with the same name"), "{}", err(&o));
}

#[test]
fn a_checkpoint_not_extending_the_last_signed_one_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let keyf = tmp.path().join("signer.key");
    let k = keyf.to_str().unwrap();
    ok(&run(
        bare(&["keygen", "--name", "fork.example/log", "--out", k]),
        "",
    ));
    // Log A: 30 events, signed.
    let a = tmp.path().join("a");
    append(&a, 1, 30);
    ok(&run(cli(&a, &["checkpoint", "--signed", "--key", k]), ""));
    // Log B: other events, 50 of them; give it A's last signed checkpoint, as if the history
    // under the key had been rewritten.
    let b = tmp.path().join("b");
    append(&b, 2, 50);
    std::fs::create_dir_all(b.join("merkle")).unwrap();
    std::fs::copy(a.join("merkle/checkpoint"), b.join("merkle/checkpoint")).unwrap();
    let o = run(cli(&b, &["checkpoint", "--signed", "--key", k]), "");
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    let e = err(&o);
    assert!(
        e.contains("refusing to sign") && e.contains("not an extension"),
        "{e}"
    );
    assert!(e.contains("size 30"), "{e}");
    // The kept checkpoint is still A's.
    assert_eq!(
        std::fs::read(b.join("merkle/checkpoint")).unwrap(),
        std::fs::read(a.join("merkle/checkpoint")).unwrap()
    );
    // A larger signed checkpoint than the tree: also refused.
    let c = tmp.path().join("c");
    append(&c, 1, 10);
    std::fs::create_dir_all(c.join("merkle")).unwrap();
    std::fs::copy(a.join("merkle/checkpoint"), c.join("merkle/checkpoint")).unwrap();
    let o = run(cli(&c, &["checkpoint", "--signed", "--key", k]), "");
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("the tree is smaller"), "{}", err(&o));
    // And A itself extends fine.
    append(&a, 3, 5);
    let cp = ok(&run(cli(&a, &["checkpoint", "--signed", "--key", k]), ""));
    assert!(cp.starts_with("fork.example/log\n35\n"), "{cp}");
}

#[test]
fn a_rotated_key_signs_on_and_verifiers_of_the_old_key_follow_the_statement() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    let p = |name: &str| t.join(name).to_str().unwrap().to_string();
    let old_vkey = ok(&run(
        bare(&[
            "keygen",
            "--name",
            "audit.example.com/rot",
            "--out",
            &p("old.key"),
        ]),
        "",
    ))
    .trim()
    .to_string();
    append(&data, 1, 30);
    let cp_old = ok(&run(
        cli(&data, &["checkpoint", "--signed", "--key", &p("old.key")]),
        "",
    ));
    std::fs::write(t.join("cp-old"), &cp_old).unwrap();

    // Rotate: same name, a new key, and a statement signed by both.
    let o = run(
        bare(&["keygen", "--rotate", &p("old.key"), "--out", &p("new.key")]),
        "",
    );
    let new_vkey = ok(&o).trim().to_string();
    assert!(new_vkey.starts_with("audit.example.com/rot+"), "{new_vkey}");
    assert_ne!(new_vkey, old_vkey);
    assert!(err(&o).contains("rotation statement"), "{}", err(&o));
    let statement = std::fs::read_to_string(t.join("new.key.rotation")).unwrap();
    assert!(
        statement.starts_with(&format!(
            "auditlog key rotation v1\n{old_vkey}\n{new_vkey}\n\n"
        )),
        "{statement}"
    );
    assert_eq!(
        statement.matches("\n— audit.example.com/rot ").count(),
        2,
        "{statement}"
    );
    // A rotation keeps the name, and never overwrites a statement.
    let renamed = run(
        bare(&[
            "keygen",
            "--rotate",
            &p("old.key"),
            "--name",
            "other/name",
            "--out",
            &p("x.key"),
        ]),
        "",
    );
    assert!(!renamed.status.success());
    assert!(
        err(&renamed).contains("keeps the old key's name"),
        "{}",
        err(&renamed)
    );
    assert!(!t.join("x.key").exists());
    let again = run(
        bare(&[
            "keygen",
            "--rotate",
            &p("old.key"),
            "--out",
            &p("y.key"),
            "--statement",
            &p("new.key.rotation"),
        ]),
        "",
    );
    assert!(!again.status.success());
    assert!(err(&again).contains("exists already"), "{}", err(&again));

    // The new key signs the grown tree: still consistent with the old key's checkpoint.
    append(&data, 2, 50);
    let cp_new = ok(&run(
        cli(&data, &["checkpoint", "--signed", "--key", &p("new.key")]),
        "",
    ));
    assert!(
        cp_new.starts_with("audit.example.com/rot\n80\n"),
        "{cp_new}"
    );
    std::fs::write(t.join("cp-new"), &cp_new).unwrap();
    let proof = ok(&run(cli(&data, &["prove", "--seq", "7"]), ""));
    std::fs::write(t.join("proof.json"), &proof).unwrap();
    let receipt = ok(&run(
        cli(&data, &["prove", "--seq", "7", "--format", "tlog-proof"]),
        "",
    ));
    std::fs::write(t.join("receipt"), &receipt).unwrap();

    let verify = |key: &str, file: &str, rotations: &[&str]| {
        let mut args = vec!["verify-proof", "--key", key, "--proof"];
        let f = p(file);
        args.push(&f);
        let rs: Vec<String> = rotations.iter().map(|r| p(r)).collect();
        for r in &rs {
            args.push("--rotation");
            args.push(r);
        }
        run(bare(&args), "")
    };
    for file in ["proof.json", "receipt"] {
        // The old key alone does not vouch for the new key's checkpoint ...
        let v = verify(&old_vkey, file, &[]);
        assert_eq!(v.status.code(), Some(1), "{file}: {}", out(&v));
        assert!(
            err(&v).contains("no signature by a known key"),
            "{file}: {}",
            err(&v)
        );
        // ... with the statement it does; the new key alone does too.
        let v = verify(&old_vkey, file, &["new.key.rotation"]);
        assert!(ok(&v).starts_with("ok: "), "{file}: {}", out(&v));
        assert!(
            err(&v).contains("trusting audit.example.com/rot+"),
            "{}",
            err(&v)
        );
        ok(&verify(&new_vkey, file, &[]));
    }

    // Both checkpoints agree, checked with the old key and the statement.
    let vc = run(
        cli(
            &data,
            &[
                "verify-checkpoints",
                "--key",
                &old_vkey,
                "--rotation",
                &p("new.key.rotation"),
                &p("cp-old"),
                &p("cp-new"),
            ],
        ),
        "",
    );
    assert!(ok(&vc).contains("2 checkpoint(s)"), "{}", out(&vc));

    // Forged statements: one claiming the new key signed only by an impostor's key, and
    // one whose new key line was swapped, are refused, naming the statement.
    let imp_vkey = ok(&run(
        bare(&[
            "keygen",
            "--name",
            "audit.example.com/rot",
            "--out",
            &p("impostor.key"),
        ]),
        "",
    ))
    .trim()
    .to_string();
    let swapped = statement.replacen(&new_vkey, &imp_vkey, 1);
    std::fs::write(t.join("swapped.rotation"), &swapped).unwrap();
    let v = verify(&old_vkey, "proof.json", &["swapped.rotation"]);
    assert!(!v.status.success());
    assert!(err(&v).contains("rotation statement 1"), "{}", err(&v));
    let rot2 = run(
        bare(&[
            "keygen",
            "--rotate",
            &p("impostor.key"),
            "--out",
            &p("imp2.key"),
        ]),
        "",
    );
    ok(&rot2);
    // A statement from a key the verifier never trusted does not chain from --key.
    let v = verify(&old_vkey, "proof.json", &["imp2.key.rotation"]);
    assert!(!v.status.success());
    assert!(
        err(&v).contains("is not audit.example.com/rot+"),
        "{}",
        err(&v)
    );
}
