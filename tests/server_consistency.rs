//! `GET /api/audit-logs/consistency?old=N[&new=M]` against a real `auditlog serve`: the RFC
//! 9162 consistency proof between two tree sizes (default new: the current tree, signed first
//! when the server has `server.checkpoint_signing_key`, and then verifiable with only the
//! verifier key), the `read` role, and a JSON 400 naming the parameter for every bad input.
#![cfg(feature = "server")]

#[path = "common/server.rs"]
mod server;

use auditlog::merkle::verify_consistency;
use auditlog::note::SignerKey;
use auditlog::transparency::{self, ConsistencyProof};
use serde_json::{json, Value};
use server::{
    api_error as error_of, b64_hash as b64, config_json, seed_event, Server, INGESTER, READER,
};

const PREFIXES: [&str; 2] = ["/api/audit-logs", "/api/enterprise/audit-logs"];

fn ingest(s: &Server, n: u32) {
    let evs: Vec<Value> = (0..n)
        .map(|i| seed_event(&format!("evt-cons-{i}"), i))
        .collect();
    let r = s.post_json(PREFIXES[0], Some(INGESTER), &json!(evs));
    assert_eq!(r.status, 200, "ingest: {}", r.text());
}

fn check(p: &ConsistencyProof) {
    verify_consistency(
        p.old_size,
        p.new_size,
        &b64(&p.old_root),
        &b64(&p.new_root),
        &p.hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
    )
    .unwrap_or_else(|e| panic!("{} -> {}: {e}", p.old_size, p.new_size));
}

#[test]
fn consistency_proofs_verify_and_bad_inputs_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &config_json("", ""), &[]);
    ingest(&s, 40);
    for p in PREFIXES {
        for (old, new) in [(1, 2), (3, 7), (7, 7), (16, 32), (13, 40), (40, 40)] {
            let r = s.get(
                &format!("{p}/consistency?old={old}&new={new}"),
                Some(READER),
            );
            assert_eq!(r.status, 200, "{}", r.text());
            let proof: ConsistencyProof = serde_json::from_str(&r.text()).unwrap();
            assert_eq!((proof.old_size, proof.new_size), (old, new));
            assert_eq!(proof.checkpoint, None, "no signing key: no checkpoint");
            check(&proof);
        }
        // Default new: the current tree (at least the 40 ingested, plus access events).
        let r = s.get(&format!("{p}/consistency?old=5"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let proof: ConsistencyProof = serde_json::from_str(&r.text()).unwrap();
        assert!(proof.new_size >= 40, "{}", proof.new_size);
        check(&proof);
        for (q, param, what) in [
            ("", "old", "missing"),
            ("old=0", "old", "zero"),
            ("old=abc", "old", "not a number"),
            ("old=-1", "old", "negative"),
            ("old=", "old", "empty"),
            ("old=5&new=3", "old", "old above new"),
            ("old=1&new=0", "old", "new zero"),
            ("old=1&new=99999999", "new", "new above the tree"),
            ("old=1&new=18446744073709551616", "new", "over u64"),
            ("old=1&old=2", "old", "twice"),
            ("old=1&size=3", "size", "unknown"),
        ] {
            let e = error_of(
                &s.get(&format!("{p}/consistency?{q}"), Some(READER)),
                400,
                what,
            );
            assert_eq!(e["param"], param, "{what}: {e}");
        }
        assert_eq!(s.get(&format!("{p}/consistency?old=1"), None).status, 401);
        assert_eq!(
            s.get(&format!("{p}/consistency?old=1"), Some(INGESTER))
                .status,
            403
        );
    }
    let doc = s.get("/api/openapi.json", Some(READER)).json();
    for p in PREFIXES {
        let op = &doc["paths"][format!("{p}/consistency")]["get"];
        assert!(op["operationId"].is_string(), "{p}: {op}");
    }
    assert!(doc["components"]["schemas"]["ConsistencyProof"].is_object());
}

#[test]
fn a_signing_server_attaches_the_checkpoint_of_the_new_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::generate("audit.example.com/consistency").unwrap();
    let keyf = tmp.path().join("signer.key");
    std::fs::write(&keyf, key.to_secret_string().as_str()).unwrap();
    let cfg = config_json("", &format!(r#""checkpoint_signing_key": {}"#, json!(keyf)));
    let s = Server::start(tmp.path(), &cfg, &[]);
    ingest(&s, 25);
    let mut last = 0;
    for p in PREFIXES {
        let r = s.get(&format!("{p}/consistency?old=10"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.text();
        let proof: ConsistencyProof = serde_json::from_str(&body).unwrap();
        assert!(proof.checkpoint.is_some());
        // Only the verifier key is needed.
        let v = transparency::verify_proof(&body, &key.verifier()).unwrap();
        assert_eq!(v.checkpoint.size, proof.new_size);
        assert_eq!(v.old.unwrap().0, 10);
        assert!(proof.new_size > last);
        last = proof.new_size;
    }
}
