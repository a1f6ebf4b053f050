//! The C2SP tlog-witness `add-checkpoint` protocol of `auditlog::witness::Witness`, answer by
//! answer (the HTTP layer only maps these to status codes; tests/witness_cli.rs runs it over
//! HTTP): a first checkpoint from old 0, an extension with a consistency proof, 409 with the
//! witness's size for a wrong old size, 422 for a bad proof, 409 for a same-size fork (kept as
//! evidence), 404 for an unknown origin, 403 for a bad signature or another key, 400 for
//! malformed bodies, and the state surviving a restart (and a crash between the write and
//! the rename).
#![cfg(feature = "transparency")]

use auditlog::merkle::{consistency_proof, record_leaf_hash, MemoryTree};
use auditlog::note::{self, KeyType, SignerKey};
use auditlog::transparency::TreeCheckpoint;
use auditlog::witness::{AddCheckpoint, Refusal, Witness, WitnessedLog, SIZE_CONTENT_TYPE};

const ORIGIN: &str = "audit.example.com/witnessed";

fn tree(seed: u8, n: u64) -> MemoryTree {
    MemoryTree::from_leaf_hashes((0..n).map(|i| record_leaf_hash(i, i as i64 * 1000, &[seed; 32])))
}

fn signed(key: &SignerKey, t: &MemoryTree) -> String {
    key.sign(
        &TreeCheckpoint {
            origin: key.name().to_string(),
            size: t.size(),
            root: t.root(),
        }
        .body(),
    )
    .unwrap()
}

fn body(old: u64, t: &MemoryTree, cp: &str) -> Vec<u8> {
    let proof = if old == 0 {
        Vec::new()
    } else {
        consistency_proof(t, old, t.size()).unwrap()
    };
    AddCheckpoint {
        old,
        proof,
        checkpoint: cp.to_string(),
    }
    .to_body()
    .into_bytes()
}

struct Setup {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    log: SignerKey,
    wkey: String,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("witness");
    Setup {
        dir,
        _tmp: tmp,
        log: SignerKey::generate(ORIGIN).unwrap(),
        wkey: SignerKey::generate_typed("witness.example.com/w1", KeyType::CosignatureV1)
            .unwrap()
            .to_secret_string()
            .to_string(),
    }
}

impl Setup {
    fn open(&self) -> Witness {
        Witness::open(
            SignerKey::parse(&self.wkey).unwrap(),
            vec![WitnessedLog::parse(&self.log.verifier().to_string()).unwrap()],
            &self.dir,
        )
        .unwrap()
    }
}

fn cosign_ok(w: &Witness, body: &[u8], now: u64) -> String {
    match w.add_checkpoint(body, now).unwrap() {
        Ok(line) => line,
        Err(r) => panic!("refused ({}): {r}", r.status()),
    }
}

fn refused(w: &Witness, body: &[u8]) -> Refusal {
    match w.add_checkpoint(body, 1_700_000_000).unwrap() {
        Ok(line) => panic!("cosigned {line:?}"),
        Err(r) => r,
    }
}

#[test]
fn cosigns_a_growing_log_and_refuses_what_the_spec_refuses() {
    let s = setup();
    let w = s.open();
    let wv = w.verifier();
    assert_eq!(wv.key_type(), KeyType::CosignatureV1);
    // First contact: old 0, empty proof.
    let t10 = tree(1, 10);
    let cp10 = signed(&s.log, &t10);
    let line = cosign_ok(&w, &body(0, &t10, &cp10), 1_700_000_000);
    assert!(
        line.starts_with("\u{2014} witness.example.com/w1 "),
        "{line}"
    );
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    let cosigned = note::add_signatures(&cp10, &line).unwrap();
    let c = note::cosignatures(&cosigned, std::slice::from_ref(&wv)).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].timestamp, 1_700_000_000);
    // The log's key still opens the cosigned note.
    TreeCheckpoint::open(&cosigned, &s.log.verifier()).unwrap();
    assert_eq!(w.size_of(ORIGIN), 10);

    // A stale client (old 0) is told the witness's size, as text/x.tlog.size.
    let t25 = tree(1, 25);
    let cp25 = signed(&s.log, &t25);
    let r = refused(&w, &body(0, &t25, &cp25));
    assert_eq!(r, Refusal::SizeMismatch { size: 10 });
    assert_eq!(r.status(), 409);
    assert_eq!(r.content_type(), SIZE_CONTENT_TYPE);
    assert_eq!(r.body(), "10\n");
    let r = refused(&w, &body(7, &t25, &cp25));
    assert_eq!(r, Refusal::SizeMismatch { size: 10 });

    // A bad proof: one hash changed.
    let mut bad = AddCheckpoint::parse(&body(10, &t25, &cp25)).unwrap();
    bad.proof[0][3] ^= 1;
    let r = refused(&w, bad.to_body().as_bytes());
    assert_eq!(r.status(), 422, "{r}");
    // A proof from the wrong tree (another log's history with the same size).
    let other25 = tree(2, 25);
    let mut wrong = AddCheckpoint::parse(&body(10, &t25, &cp25)).unwrap();
    wrong.proof = consistency_proof(&other25, 10, 25).unwrap();
    assert_eq!(refused(&w, wrong.to_body().as_bytes()).status(), 422);
    assert_eq!(w.size_of(ORIGIN), 10, "a refusal keeps the state");

    // The right proof is cosigned.
    cosign_ok(&w, &body(10, &t25, &cp25), 1_700_000_100);
    assert_eq!(w.size_of(ORIGIN), 25);
    // The same checkpoint again (old = size, empty proof) is cosigned again.
    cosign_ok(&w, &body(25, &t25, &cp25), 1_700_000_200);

    // A fork: same size, another root, validly signed. 409, kept as evidence.
    let fork = signed(&s.log, &other25);
    let b = AddCheckpoint {
        old: 25,
        proof: vec![],
        checkpoint: fork.clone(),
    };
    let r = refused(&w, b.to_body().as_bytes());
    assert!(matches!(r, Refusal::RootMismatch(_)), "{r:?}");
    assert_eq!(r.status(), 409);
    assert!(r.body().contains("fork"), "{}", r.body());
    let evidence: Vec<_> = std::fs::read_dir(s.dir.join("evidence"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(evidence.contains(&fork), "the forked checkpoint is kept");

    // A smaller tree after a larger one: old (25) above the checkpoint's size: 400.
    let t20 = tree(1, 20);
    let cp20 = signed(&s.log, &t20);
    let b = AddCheckpoint {
        old: 25,
        proof: vec![],
        checkpoint: cp20,
    };
    assert_eq!(refused(&w, b.to_body().as_bytes()).status(), 400);

    // Unknown origin: 404.
    let stranger = SignerKey::generate("elsewhere.example/log").unwrap();
    let r = refused(&w, &body(0, &t10, &signed(&stranger, &t10)));
    assert_eq!(r.status(), 404, "{r}");
    // The right origin signed by another key: 403.
    let impostor = SignerKey::generate(ORIGIN).unwrap();
    let t30 = tree(1, 30);
    let r = refused(&w, &body(25, &t30, &signed(&impostor, &t30)));
    assert_eq!(r.status(), 403, "{r}");
    // A known key's signature that does not verify: 403.
    let good = signed(&s.log, &t30);
    let tampered = good.replacen("\n30\n", "\n31\n", 1);
    assert_eq!(refused(&w, &body(25, &t30, &tampered)).status(), 403);
    assert_eq!(w.size_of(ORIGIN), 25);

    // Malformed bodies: 400, naming what.
    for (b, what) in [
        (b"old 01\n\n".to_vec(), "leading zeros"),
        (b"new 3\n\nx\n".to_vec(), "`old <size>`"),
        (
            format!("old 25\nnot-base64!\n\n{good}").into_bytes(),
            "line 2",
        ),
        (format!("old 25\n{good}").into_bytes(), "line 2"),
        (b"old 3\n".to_vec(), "no empty line"),
        (
            format!(
                "old 25\n{}\n{good}",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n".repeat(64)
            )
            .into_bytes(),
            "at most 63",
        ),
        (vec![0xff, 0xfe, b'\n', b'\n'], "UTF-8"),
    ] {
        let r = refused(&w, &b);
        assert_eq!(r.status(), 400, "{what}: {r}");
        assert!(r.body().contains(what), "{what}: {}", r.body());
    }
    // Old 0 with a proof: 400.
    let b = AddCheckpoint {
        old: 0,
        proof: vec![[0; 32]],
        checkpoint: good.clone(),
    };
    let fresh = Setup {
        dir: s.dir.with_file_name("fresh"),
        _tmp: tempfile::tempdir().unwrap(),
        log: SignerKey::parse(&s.log.to_secret_string()).unwrap(),
        wkey: s.wkey.clone(),
    };
    let w2 = fresh.open();
    assert_eq!(refused(&w2, b.to_body().as_bytes()).status(), 400);
}

#[test]
fn state_survives_a_restart_and_a_crash_mid_write() {
    let s = setup();
    let t40 = tree(3, 40);
    {
        let w = s.open();
        // One witness process per state directory.
        let second = Witness::open(
            SignerKey::parse(&s.wkey).unwrap(),
            vec![WitnessedLog::parse(&s.log.verifier().to_string()).unwrap()],
            &s.dir,
        );
        assert!(
            second.unwrap_err().to_string().contains("in use"),
            "a second witness on the same state is refused"
        );
        cosign_ok(&w, &body(0, &t40, &signed(&s.log, &t40)), 1_700_000_000);
    }
    // Restarted: it still holds 40 and refuses a rollback to 0.
    let w = s.open();
    assert_eq!(w.size_of(ORIGIN), 40);
    let t50 = tree(3, 50);
    let cp50 = signed(&s.log, &t50);
    assert_eq!(
        refused(&w, &body(0, &t50, &cp50)),
        Refusal::SizeMismatch { size: 40 }
    );
    let kept = w.cosigned(ORIGIN).unwrap().unwrap();
    assert!(kept.starts_with(&format!("{ORIGIN}\n40\n")), "{kept}");
    drop(w);

    // A crash after writing the temporary file but before the rename: the old state holds
    // (the file is replaced only by rename).
    let logs = s.dir.join("logs");
    let name = auditlog::witness::state_file_name(ORIGIN);
    std::fs::write(logs.join(format!("{name}.tmp")), "torn").unwrap();
    let w = s.open();
    assert_eq!(w.size_of(ORIGIN), 40);
    cosign_ok(&w, &body(40, &t50, &cp50), 1_700_000_001);
    drop(w);
    let w = s.open();
    assert_eq!(w.size_of(ORIGIN), 50);
    drop(w);

    // A damaged state file stops the witness instead of restarting from nothing.
    std::fs::write(logs.join(&name), "garbage\n").unwrap();
    let e = Witness::open(
        SignerKey::parse(&s.wkey).unwrap(),
        vec![WitnessedLog::parse(&s.log.verifier().to_string()).unwrap()],
        &s.dir,
    )
    .unwrap_err();
    assert!(e.to_string().contains("witness state"), "{e}");
}

#[test]
fn witness_needs_a_cosigner_key_and_logs_by_origin() {
    let tmp = tempfile::tempdir().unwrap();
    let log = SignerKey::generate(ORIGIN).unwrap();
    // A note key cannot be a witness key.
    let e = Witness::open(
        SignerKey::generate("w.example").unwrap(),
        vec![WitnessedLog::parse(&log.verifier().to_string()).unwrap()],
        tmp.path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cosignature/v1"), "{e}");
    // A witness key cannot be a log key.
    let wk = SignerKey::generate_typed("w.example", KeyType::CosignatureV1).unwrap();
    assert!(WitnessedLog::parse(&wk.verifier().to_string()).is_err());
    // `ORIGIN VKEY`: an origin line other than the key name.
    let l = WitnessedLog::parse(&format!("other.example/origin {}", log.verifier())).unwrap();
    assert_eq!(l.origin, "other.example/origin");
}
