//! Cross-check of the transparency log with Go's reference implementation
//! (`golang.org/x/mod/sumdb/note` and `sumdb/tlog`, from Debian's golang-go and
//! golang-golang-x-mod-dev): tests/go-verify is built here with `go build` (offline,
//! GO111MODULE=off, GOPATH=/usr/share/gocode) and driven with JSON on stdin.
//!
//! Both directions, at tree sizes 1, 2, 255, 256, 257 and 1000:
//! - Go verifies what we made: our signed checkpoints with our verifier key (`note.Open`), our
//!   inclusion proofs (`tlog.CheckRecord`), our consistency proofs (`tlog.CheckTree`), and
//!   reads our tiles (`tlog.TileHashReader`, authenticated against the checkpoint) to get our
//!   root and the same proofs; and it rejects a tampered proof.
//! - We verify what Go made: notes signed by a Go key, proofs from `tlog.ProveRecord` and
//!   `tlog.ProveTree`, through the library and `auditlog verify-proof`; tampered ones fail.
//!
//! - After retention pruned level-0 tiles (tests/merkle_retention.rs), Go still verifies our
//!   proofs for the remaining leaves and from the previous signed checkpoint, and reads the
//!   tree that is left through `tlog.TileHashReader`.
//!
//! `go` missing fails the test with a message, unless AUDITLOG_SKIP_GO=1 (then it is skipped,
//! saying why).
#![cfg(all(feature = "transparency", feature = "cli"))]

mod common;
mod retention_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use auditlog::merkle::{record_leaf_hash, tree_hash, MemoryTree};
use auditlog::note::{SignerKey, VerifierKey};
use auditlog::tlog_proof;
use auditlog::transparency::{self, ConsistencyProof, InclusionProof};
use auditlog::Log;
use serde_json::{json, Value};

const SIZES: [u64; 6] = [1, 2, 255, 256, 257, 1000];

/// The built go-verify binary, or None when go is missing and AUDITLOG_SKIP_GO=1.
fn go_verify() -> Option<&'static Path> {
    static BIN: OnceLock<Option<(tempfile::TempDir, PathBuf)>> = OnceLock::new();
    BIN.get_or_init(|| {
        let skip = std::env::var("AUDITLOG_SKIP_GO").as_deref() == Ok("1");
        let have_go = Command::new("go")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let gopath = Path::new("/usr/share/gocode");
        let have_mod = gopath.join("src/golang.org/x/mod/sumdb/tlog").is_dir();
        if !(have_go && have_mod) {
            let what = if have_go {
                "golang.org/x/mod is missing from /usr/share/gocode (Debian's golang-golang-x-mod-dev)"
            } else {
                "`go` is not on PATH (Debian's golang-go)"
            };
            if skip {
                eprintln!("skipping the Go cross-check: {what} and AUDITLOG_SKIP_GO=1");
                return None;
            }
            panic!(
                "the Go cross-check needs Go: {what}; install golang-go and \
                 golang-golang-x-mod-dev (.ci/run does), or set AUDITLOG_SKIP_GO=1 to skip"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let bin = tmp.path().join("go-verify");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/go-verify");
        let out = Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(".")
            .current_dir(&src)
            .env("GO111MODULE", "off")
            .env("GOPATH", gopath)
            .env("GOCACHE", tmp.path().join("gocache"))
            .env("GOFLAGS", "")
            .env("CGO_ENABLED", "0")
            .output()
            .expect("running go build");
        assert!(
            out.status.success(),
            "go build of tests/go-verify failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some((tmp, bin))
    })
    .as_ref()
    .map(|(_, b)| b.as_path())
}

fn run_go(bin: &Path, req: &Value) -> Value {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting go-verify");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(req.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "go-verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("go-verify answers JSON")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Flips one bit of the first hash of `hashes` (or of the root when there are none).
fn tamper_b64(s: &str) -> String {
    use base64::Engine;
    let e = base64::engine::general_purpose::STANDARD;
    let mut b = e.decode(s).unwrap();
    b[5] ^= 0x10;
    e.encode(b)
}

fn indices(n: u64) -> Vec<u64> {
    let mut v = vec![0, n / 2, n - 1];
    v.dedup();
    v
}

#[test]
fn go_verifies_our_checkpoints_proofs_and_tiles() {
    let Some(bin) = go_verify() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), common::buffered_opts()).unwrap();
    let key = SignerKey::generate("audit.example.com/log").unwrap();
    let vkey = key.verifier().to_string();
    let evs = common::events(13, 1000);
    let mut signed_sizes: Vec<u64> = Vec::new();
    let mut at = 0u64;
    for &n in &SIZES {
        log.append_batch(&evs[at as usize..n as usize]).unwrap();
        at = n;
        let cp_note = transparency::sign_checkpoint(&log, &key).unwrap();
        let inclusion: Vec<InclusionProof> = indices(n)
            .into_iter()
            .map(|i| transparency::prove_inclusion(&log, i, None).unwrap())
            .collect();
        // An older tree's proof (with no checkpoint attached) is not Go's to check here.
        assert!(inclusion
            .iter()
            .all(|p| p.checkpoint.as_deref() == Some(&cp_note)));
        let consistency: Vec<ConsistencyProof> = signed_sizes
            .iter()
            .chain(std::iter::once(&n))
            .map(|&old| transparency::prove_consistency(&log, old, n).unwrap())
            .collect();
        let receipts: Vec<String> = inclusion
            .iter()
            .map(|p| tlog_proof::format(p).unwrap())
            .collect();
        let req = json!({
            "op": "check",
            "vkey": vkey,
            "checkpoint": cp_note,
            "tiles": dir.path().join("merkle"),
            "inclusion": inclusion,
            "consistency": consistency,
            "receipts": receipts,
        });
        let ans = run_go(bin, &req);
        let ours = transparency::TreeCheckpoint::open(&cp_note, &key.verifier()).unwrap();
        assert_eq!(ans["checkpoint"]["size"], json!(n), "size {n}: {ans}");
        assert_eq!(
            ans["checkpoint"]["origin"],
            json!("audit.example.com/log"),
            "{ans}"
        );
        assert_eq!(
            ans["checkpoint"]["root"].as_str().unwrap(),
            inclusion[0].root,
            "size {n}: Go's reading of our checkpoint"
        );
        for (i, r) in strs(&ans["inclusion"]).iter().enumerate() {
            assert_eq!(r, "ok", "size {n}: inclusion proof {i} rejected by Go");
        }
        for (i, r) in strs(&ans["consistency"]).iter().enumerate() {
            assert_eq!(
                r, "ok",
                "size {n}: consistency proof {}→{n} rejected by Go",
                consistency[i].old_size
            );
        }
        for (i, r) in strs(&ans["receipts"]).iter().enumerate() {
            assert_eq!(r, "ok", "size {n}: tlog-proof receipt {i} rejected by Go");
        }
        assert_eq!(strs(&ans["receipts"]).len(), receipts.len());
        assert_eq!(ans["tile_error"], Value::Null, "size {n}: {ans}");
        assert_eq!(
            ans["tile_root"].as_str().unwrap(),
            inclusion[0].root,
            "size {n}: the root Go computes from our tiles"
        );
        let eq = strs(&ans["tile_proofs_equal"]);
        assert_eq!(eq.len(), inclusion.len());
        assert!(eq.iter().all(|r| r == "ok"), "size {n}: {eq:?}");
        // And the root is what we compute in memory from the records.
        let mem = MemoryTree::from_leaf_hashes((0..n).map(|s| {
            let (ts, d) = log.merkle_leaf(s).unwrap();
            record_leaf_hash(s, ts, &d)
        }));
        assert_eq!(tree_hash(&mem, n).unwrap(), ours.root);

        // Go rejects tampered proofs and a checkpoint signed by another key.
        let mut bad_inc = inclusion.clone();
        for p in &mut bad_inc {
            if let Some(h) = p.hashes.first_mut() {
                *h = tamper_b64(h);
            } else {
                p.digest = hex(&[0xab; 32]);
            }
        }
        let mut bad_con: Vec<ConsistencyProof> = consistency
            .iter()
            .filter(|p| !p.hashes.is_empty())
            .cloned()
            .collect();
        for p in &mut bad_con {
            let last = p.hashes.len() - 1;
            p.hashes[last] = tamper_b64(&p.hashes[last]);
        }
        let other = SignerKey::generate("audit.example.com/log").unwrap();
        let ans = run_go(
            bin,
            &json!({
                "op": "check",
                "vkey": other.verifier().to_string(),
                "checkpoint": cp_note,
                "inclusion": [],
                "consistency": [],
            }),
        );
        assert!(
            ans["checkpoint_error"]
                .as_str()
                .is_some_and(|e| e.contains("note.Open")),
            "size {n}: Go accepted our checkpoint with another key: {ans}"
        );
        // A receipt whose leaf (extra) names another timestamp.
        let bad_receipts: Vec<String> = bad_inc
            .iter()
            .map(|p| {
                let mut q = p.clone();
                q.checkpoint = Some(cp_note.clone());
                q.timestamp_ns += 1;
                tlog_proof::format(&q).unwrap()
            })
            .collect();
        let ans = run_go(
            bin,
            &json!({
                "op": "check", "vkey": vkey, "checkpoint": "",
                "inclusion": bad_inc, "consistency": bad_con, "receipts": bad_receipts,
            }),
        );
        assert_eq!(strs(&ans["receipts"]).len(), bad_receipts.len());
        for r in strs(&ans["inclusion"])
            .iter()
            .chain(strs(&ans["consistency"]).iter())
            .chain(strs(&ans["receipts"]).iter())
        {
            assert_ne!(r, "ok", "size {n}: Go accepted a tampered proof");
        }
        signed_sizes.push(n);
    }
}

fn cli_verify(proof: &Value, vkey: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("proof.json");
    std::fs::write(&f, proof.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_auditlog"))
        .args(["verify-proof", "--key", vkey, "--proof"])
        .arg(&f)
        .env_remove("AUDITLOG_DATA")
        .env_remove("AUDIT_HMAC_KEY")
        .output()
        .unwrap()
}

#[test]
fn we_verify_go_signed_checkpoints_and_proofs() {
    let Some(bin) = go_verify() else { return };
    let evs = common::events(7, 1000);
    // Leaves like ours: a timestamp and a digest per record.
    let leaves: Vec<(i64, [u8; 32])> = evs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            use sha2::Digest;
            let d: [u8; 32] = sha2::Sha256::digest(serde_json::to_vec(e).unwrap()).into();
            (1_700_000_000_000_000_000 + i as i64 * 1_000_003, d)
        })
        .collect();
    let mut prove_records = Vec::new();
    let mut prove_trees = Vec::new();
    for &n in &SIZES {
        for i in indices(n) {
            prove_records.push(json!([i, n]));
        }
        for &old in SIZES.iter().filter(|&&o| o <= n) {
            prove_trees.push(json!([old, n]));
        }
    }
    let ans = run_go(
        bin,
        &json!({
            "op": "make",
            "name": "go.example.org/tlog",
            "leaves": leaves.iter().map(|(ts, d)| json!({"timestamp_ns": ts, "digest": hex(d)})).collect::<Vec<_>>(),
            "prove_records": prove_records,
            "prove_trees": prove_trees,
        }),
    );
    let vkey_s = ans["vkey"].as_str().unwrap().to_string();
    let vkey = VerifierKey::parse(&vkey_s).unwrap();
    assert_eq!(vkey.name(), "go.example.org/tlog");
    let wrong = SignerKey::generate("go.example.org/tlog")
        .unwrap()
        .verifier();
    let mem = MemoryTree::from_leaf_hashes(
        leaves
            .iter()
            .enumerate()
            .map(|(i, (ts, d))| record_leaf_hash(i as u64, *ts, d)),
    );
    // Go's receipts, written from the tlog-proof spec, verify with our verifier.
    let go_receipts = strs(&ans["receipts"]);
    assert_eq!(go_receipts.len(), prove_records.len());
    for (r, q) in go_receipts.iter().zip(&prove_records) {
        let v = tlog_proof::verify(r, &vkey)
            .unwrap_or_else(|e| panic!("our verifier rejects Go's receipt {q}: {e}"));
        assert_eq!(json!([v.seq, v.checkpoint.size]), *q);
        assert!(tlog_proof::verify(r, &wrong).is_err());
        let tampered = r.replacen("index ", "index 1", 1);
        assert!(tlog_proof::verify(&tampered, &vkey).is_err(), "{tampered}");
    }
    let inc = ans["inclusion"].as_array().unwrap();
    let con = ans["consistency"].as_array().unwrap();
    assert_eq!(inc.len(), prove_records.len());
    assert_eq!(con.len(), prove_trees.len());
    let mut cli_checked = 0;
    for p in inc.iter().chain(con.iter()) {
        let s = p.to_string();
        let v = transparency::verify_proof(&s, &vkey)
            .unwrap_or_else(|e| panic!("our verifier rejects Go's proof {p}: {e}"));
        // Go's root is ours for the same leaves.
        assert_eq!(
            v.checkpoint.root,
            tree_hash(&mem, v.checkpoint.size).unwrap()
        );
        assert!(
            transparency::verify_proof(&s, &wrong).is_err(),
            "accepted with the wrong key"
        );
        // Tampered: a hash of the path, or (for an empty path) the digest / old root.
        let mut bad = p.clone();
        let hashes = bad["hashes"].as_array_mut().unwrap();
        if let Some(h) = hashes.first_mut() {
            *h = json!(tamper_b64(h.as_str().unwrap()));
        } else if bad["kind"] == "inclusion" {
            bad["digest"] = json!(hex(&[0xcd; 32]));
        } else {
            bad["old_root"] = json!(tamper_b64(bad["old_root"].as_str().unwrap()));
        }
        let err = transparency::verify_proof(&bad.to_string(), &vkey);
        assert!(err.is_err(), "our verifier accepted a tampered proof {bad}");
        // The CLI on a sample: both kinds at 257 and 1000.
        let size = p
            .get("tree_size")
            .or_else(|| p.get("new_size"))
            .unwrap()
            .as_u64()
            .unwrap();
        if size == 257 || (size == 1000 && cli_checked < 6) {
            let ok = cli_verify(p, &vkey_s);
            assert!(
                ok.status.success(),
                "auditlog verify-proof rejects Go's proof: {}",
                String::from_utf8_lossy(&ok.stderr)
            );
            assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: "));
            let no = cli_verify(&bad, &vkey_s);
            assert_eq!(no.status.code(), Some(1), "tampered proof: exit code");
            assert!(String::from_utf8_lossy(&no.stderr).contains("proof does not verify"));
            cli_checked += 1;
        }
    }
    assert!(cli_checked >= 6);
}

/// C2SP tlog-cosignature both ways: a checkpoint our witness cosigned still opens with Go's
/// `note.Open` and only the log key (the cosignature is an unknown signature to it), and a
/// cosignature/v1 verifier written in Go from the spec (crypto/ed25519 behind a
/// `note.Verifier`) accepts our cosignature with its timestamp; a cosignature made in Go (a
/// `note.Signer`) verifies with our library, and a tampered one does not.
#[test]
fn go_checks_our_cosignatures_and_we_check_gos() {
    let Some(bin) = go_verify() else { return };
    use auditlog::note::{self, KeyType};
    use auditlog::witness::{AddCheckpoint, Witness, WitnessedLog};
    let tmp = tempfile::tempdir().unwrap();
    let log = SignerKey::generate("audit.example.com/go-cosig").unwrap();
    let wkey =
        SignerKey::generate_typed("witness.example.com/rust", KeyType::CosignatureV1).unwrap();
    let wv = wkey.verifier();
    let w = Witness::open(
        wkey,
        vec![WitnessedLog::parse(&log.verifier().to_string()).unwrap()],
        &tmp.path().join("w"),
    )
    .unwrap();
    let t = MemoryTree::from_leaf_hashes((0..77u64).map(|i| record_leaf_hash(i, 5, &[7; 32])));
    let cp = log
        .sign(
            &transparency::TreeCheckpoint {
                origin: log.name().into(),
                size: t.size(),
                root: t.root(),
            }
            .body(),
        )
        .unwrap();
    let body = AddCheckpoint {
        old: 0,
        proof: vec![],
        checkpoint: cp.clone(),
    }
    .to_body();
    let line = w
        .add_checkpoint(body.as_bytes(), 1_733_000_000)
        .unwrap()
        .expect("cosigned");
    let cosigned = note::add_signatures(&cp, &line).unwrap();
    let a = run_go(
        bin,
        &json!({"op": "cosig", "vkey": log.verifier().to_string(), "cosigned": cosigned,
                "witness_vkey": wv.to_string(), "cosign_time": 1_734_000_000u64}),
    );
    assert_eq!(a["log_only"], "ok", "{a}");
    assert_eq!(a["unverified"], 1, "{a}");
    assert_eq!(a["cosig"], "ok", "{a}");
    assert_eq!(a["timestamp"], 1_733_000_000u64, "{a}");
    // A changed byte in our cosignature: Go refuses it.
    let bad_line = {
        use base64::Engine;
        let e = base64::engine::general_purpose::STANDARD;
        let (head, b) = line.trim_end().rsplit_once(' ').unwrap();
        let mut raw = e.decode(b).unwrap();
        raw[20] ^= 1;
        format!("{head} {}\n", e.encode(raw))
    };
    let a2 = run_go(
        bin,
        &json!({"op": "cosig", "vkey": log.verifier().to_string(),
                "cosigned": note::add_signatures(&cp, &bad_line).unwrap(),
                "witness_vkey": wv.to_string(), "cosign_time": 1u64}),
    );
    assert_ne!(a2["cosig"], "ok", "{a2}");

    // Go's cosignature, checked by us.
    let go_vkey = VerifierKey::parse(a["go_vkey"].as_str().unwrap()).unwrap();
    assert_eq!(go_vkey.key_type(), KeyType::CosignatureV1);
    let go_line = a["go_line"].as_str().unwrap();
    let with_go = note::add_signatures(&cosigned, go_line).unwrap();
    let c = note::cosignatures(&with_go, &[go_vkey.clone(), wv.clone()]).unwrap();
    assert_eq!(c.len(), 2, "{c:?}");
    let go_c = c.iter().find(|c| c.name == "go.example/witness").unwrap();
    assert_eq!(go_c.timestamp, 1_734_000_000);
    transparency::TreeCheckpoint::open(&with_go, &log.verifier()).unwrap();
    let forged = with_go.replacen("\n77\n", "\n78\n", 1);
    assert!(note::cosignatures(&forged, &[go_vkey]).is_err());
}

#[test]
fn go_verifies_our_proofs_after_retention_pruned_tiles() {
    use retention_support::*;
    let Some(bin) = go_verify() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let key = SignerKey::generate("audit.example.com/pruned").unwrap();
    let events = spread(1..=40, 48);
    let log = Log::open(&dir, write_opts()).unwrap();
    log.append_batch(&events[..300]).unwrap();
    transparency::sign_checkpoint(&log, &key).unwrap();
    for chunk in events[300..].chunks(64) {
        log.append_batch(chunk).unwrap();
    }
    drop(log);
    let log = reopen(&dir, 20);
    let removed = log.apply_retention(at(42, 0)).unwrap().removed.unwrap();
    let min = removed.to_seq + 1;
    assert!(!dir
        .join("merkle")
        .join(auditlog::tiles::tile_path(0, 0, None))
        .exists());
    let cp_note = transparency::sign_checkpoint(&log, &key).unwrap();
    let n = transparency::TreeCheckpoint::open(&cp_note, &key.verifier())
        .unwrap()
        .size;
    let inclusion: Vec<InclusionProof> = [min, min + 1, (min + n) / 2, n - 1]
        .into_iter()
        .map(|i| transparency::prove_inclusion(&log, i, None).unwrap())
        .collect();
    let consistency: Vec<ConsistencyProof> = [300, min, n - 1]
        .into_iter()
        .map(|old| transparency::prove_consistency(&log, old, n).unwrap())
        .collect();
    let req = json!({
        "op": "check",
        "vkey": key.verifier().to_string(),
        "checkpoint": cp_note,
        "tiles": dir.join("merkle"),
        "inclusion": inclusion,
        "consistency": consistency,
        "receipts": [],
    });
    let ans = run_go(bin, &req);
    assert_eq!(ans["checkpoint"]["size"], json!(n), "{ans}");
    assert!(strs(&ans["inclusion"]).iter().all(|r| r == "ok"), "{ans}");
    assert_eq!(strs(&ans["consistency"]).len(), 3, "{ans}");
    assert!(strs(&ans["consistency"]).iter().all(|r| r == "ok"), "{ans}");
    assert_eq!(ans["tile_error"], Value::Null, "{ans}");
    assert_eq!(ans["tile_root"].as_str().unwrap(), inclusion[0].root);
    let eq = strs(&ans["tile_proofs_equal"]);
    assert_eq!(eq.len(), inclusion.len());
    assert!(eq.iter().all(|r| r == "ok"), "{eq:?}");
}

/// A key rotation statement (`note::rotation_statement`) is a C2SP signed note that Go's
/// `note.Open` verifies with the old key, with the new key and with both, and whose two key
/// lines Go parses as note verifier keys; a statement with the new key's line swapped for
/// another key verifies with neither.
#[test]
fn go_opens_our_key_rotation_statements() {
    let Some(bin) = go_verify() else { return };
    use auditlog::note;
    let old = SignerKey::generate("audit.example.com/go-rotation").unwrap();
    let new = SignerKey::generate("audit.example.com/go-rotation").unwrap();
    let st = note::rotation_statement(&old, &new).unwrap();
    let (ov, nv) = (old.verifier().to_string(), new.verifier().to_string());
    let id = |k: &SignerKey| format!("{}+{:08x}", k.name(), k.id());
    for (keys, want) in [
        (vec![ov.clone()], vec![id(&old)]),
        (vec![nv.clone()], vec![id(&new)]),
        (vec![ov.clone(), nv.clone()], vec![id(&old), id(&new)]),
    ] {
        let a = run_go(bin, &json!({"op": "note", "note": st, "vkeys": keys}));
        assert_eq!(a["open"], "ok", "{a}");
        assert_eq!(strs(&a["verified"]), want, "{a}");
        assert_eq!(strs(&a["key_lines"]), vec!["ok", "ok"], "{a}");
    }
    let other = SignerKey::generate("audit.example.com/go-rotation").unwrap();
    let swapped = st.replacen(&nv, &other.verifier().to_string(), 1);
    for keys in [vec![ov.clone()], vec![nv.clone()]] {
        let a = run_go(bin, &json!({"op": "note", "note": swapped, "vkeys": keys}));
        assert_ne!(a["open"], "ok", "{a}");
    }
    assert!(note::follow_rotations(&old.verifier(), &[swapped]).is_err());
    assert_eq!(
        note::follow_rotations(&old.verifier(), &[st])
            .unwrap()
            .len(),
        2
    );
}
