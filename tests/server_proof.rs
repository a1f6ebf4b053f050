//! `GET /api/audit-logs/{event_id}/proof[?tree_size=N]` against a real `auditlog serve`: the
//! inclusion proof of an event against the current tree, signed first when the server has
//! `server.checkpoint_signing_key` (and then verifiable with only the verifier key), against
//! an older tree with `tree_size`, and a JSON 4xx naming the parameter for every bad input.
#![cfg(feature = "server")]

#[path = "common/server.rs"]
mod server;

use auditlog::merkle::verify_inclusion;
use auditlog::note::SignerKey;
use auditlog::transparency::{self, InclusionProof};
use serde_json::{json, Value};
use server::{
    api_error as error_of, b64_hash as b64, config_json, seed_event, Server, INGESTER, READER,
};

const PREFIXES: [&str; 2] = ["/api/audit-logs", "/api/enterprise/audit-logs"];

fn ingest(s: &Server, from: u32, n: u32) -> Vec<Value> {
    let evs: Vec<Value> = (from..from + n)
        .map(|i| seed_event(&format!("evt-proof-{i}"), i))
        .collect();
    let r = s.post_json(PREFIXES[0], Some(INGESTER), &json!(evs));
    assert_eq!(r.status, 200, "ingest: {}", r.text());
    r.json()["receipts"].as_array().unwrap().clone()
}

/// Checks a proof's path against its own root (for proofs without a checkpoint).
fn check_path(p: &InclusionProof) {
    verify_inclusion(
        &b64(&p.leaf_hash),
        p.leaf_index,
        p.tree_size,
        &p.hashes.iter().map(|h| b64(h)).collect::<Vec<_>>(),
        &b64(&p.root),
    )
    .unwrap_or_else(|e| panic!("proof of leaf {} does not verify: {e}", p.leaf_index));
}

#[test]
fn proofs_from_a_signing_server_verify_with_the_public_key() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SignerKey::generate("audit.example.com/server").unwrap();
    let keyf = tmp.path().join("signer.key");
    std::fs::write(&keyf, key.to_secret_string().as_str()).unwrap();
    let cfg = config_json("", &format!(r#""checkpoint_signing_key": {}"#, json!(keyf)));
    let s = Server::start(tmp.path(), &cfg, &[]);
    let receipts = ingest(&s, 0, 30);
    let vk = key.verifier();
    let mut last_size = 0;
    for (i, p) in PREFIXES.iter().enumerate() {
        let rc = &receipts[7 + i];
        let id = rc["event_id"].as_str().unwrap();
        let r = s.get(&format!("{p}/{id}/proof"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let body = r.text();
        let proof: InclusionProof = serde_json::from_str(&body).unwrap();
        assert_eq!(proof.leaf_index, rc["seq"].as_u64().unwrap());
        assert_eq!(proof.event_id.as_deref(), Some(id));
        assert!(
            proof.checkpoint.is_some(),
            "a signing server attaches the checkpoint"
        );
        // Only the verifier key is needed.
        let v = transparency::verify_proof(&body, &vk).unwrap();
        assert_eq!(v.checkpoint.size, proof.tree_size);
        assert!(proof.tree_size > proof.leaf_index);
        // Each read is itself an event: the next proof is against a larger, extended tree.
        assert!(proof.tree_size > last_size);
        last_size = proof.tree_size;
        // Another key with the same name does not verify it.
        let other = SignerKey::generate("audit.example.com/server")
            .unwrap()
            .verifier();
        assert!(transparency::verify_proof(&body, &other).is_err());
    }
    // An older tree: the proof has no checkpoint, its path checks against its root.
    let seq = receipts[3]["seq"].as_u64().unwrap();
    let r = s.get(
        &format!("{}/evt-proof-3/proof?tree_size={}", PREFIXES[0], seq + 1),
        Some(READER),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let p: InclusionProof = serde_json::from_str(&r.text()).unwrap();
    assert_eq!(p.tree_size, seq + 1);
    assert_eq!(p.checkpoint, None);
    check_path(&p);
    // The server kept its latest signed checkpoint where `auditlog` keeps it.
    let kept = std::fs::read_to_string(s.data.join("merkle/checkpoint")).unwrap();
    assert!(kept.starts_with("audit.example.com/server\n"), "{kept}");
    drop(s);
}

#[test]
fn proofs_without_a_signing_key_and_every_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(tmp.path(), &config_json("", ""), &[]);
    let receipts = ingest(&s, 0, 10);
    let seq5 = receipts[5]["seq"].as_u64().unwrap();
    for p in PREFIXES {
        let r = s.get(&format!("{p}/evt-proof-5/proof"), Some(READER));
        assert_eq!(r.status, 200, "{}", r.text());
        let proof: InclusionProof = serde_json::from_str(&r.text()).unwrap();
        assert_eq!(proof.checkpoint, None);
        assert_eq!(proof.leaf_index, seq5);
        check_path(&proof);
        let r = s.get(
            &format!("{p}/evt-proof-5/proof?tree_size={}", seq5 + 1),
            Some(READER),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let small: InclusionProof = serde_json::from_str(&r.text()).unwrap();
        assert_eq!(small.tree_size, seq5 + 1);
        check_path(&small);
        // Its verifier refuses a proof without a signed checkpoint.
        let k = SignerKey::generate("x.example/log").unwrap().verifier();
        let e = transparency::verify_proof(&r.text(), &k).unwrap_err();
        assert!(e.to_string().contains("no signed checkpoint"), "{e}");

        for (q, param, what) in [
            ("tree_size=abc", "tree_size", "not a number"),
            ("tree_size=-1", "tree_size", "negative"),
            ("tree_size=", "tree_size", "empty"),
            ("tree_size=%2B7", "tree_size", "a sign"),
            ("tree_size=0", "tree_size", "zero"),
            (
                &format!("tree_size={seq5}") as &str,
                "tree_size",
                "not holding the event",
            ),
            ("tree_size=99999999999", "tree_size", "larger than the tree"),
            ("tree_size=18446744073709551616", "tree_size", "over u64"),
            ("tree_size=7&tree_size=8", "tree_size", "twice"),
            ("size=7", "size", "unknown parameter"),
        ] {
            let r = s.get(&format!("{p}/evt-proof-5/proof?{q}"), Some(READER));
            let e = error_of(&r, 400, what);
            assert_eq!(e["param"], param, "{what}: {e}");
        }
        let e = error_of(
            &s.get(&format!("{p}/evt-proof-%FF/proof"), Some(READER)),
            400,
            "bad utf-8",
        );
        assert_eq!(e["param"], "event_id");
        let e = error_of(
            &s.get(&format!("{p}/no-such-event/proof"), Some(READER)),
            404,
            "missing event",
        );
        assert_eq!(e["param"], "event_id");
        error_of(
            &s.get(&format!("{p}/evt-proof-5/proof"), None),
            401,
            "no token",
        );
        let r = s.post(
            &format!("{p}/evt-proof-5/proof"),
            Some(READER),
            "application/json",
            b"{}",
        );
        error_of(&r, 405, "POST");
    }
    // The route is in the OpenAPI document, with its parameter.
    let doc = s.get("/api/openapi.json", Some(READER)).json();
    for p in PREFIXES {
        let op = &doc["paths"][format!("{p}/{{event_id}}/proof")]["get"];
        assert!(op["operationId"].is_string(), "{p}: {op}");
        assert!(op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["name"] == "tree_size"));
    }
    assert!(doc["components"]["schemas"]["InclusionProof"].is_object());
}

#[test]
fn a_bad_signing_key_file_stops_the_server_from_starting() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.key");
    let cfg = config_json(
        "",
        &format!(r#""checkpoint_signing_key": {}"#, json!(missing)),
    );
    let e = Server::try_start(tmp.path(), &cfg, &[], &[])
        .err()
        .expect("refused");
    assert!(e.contains("server.checkpoint_signing_key"), "{e}");
    let bad = tmp.path().join("bad.key");
    std::fs::write(&bad, "PRIVATE+KEY+nonsense").unwrap();
    let cfg = config_json("", &format!(r#""checkpoint_signing_key": {}"#, json!(bad)));
    let e = Server::try_start(tmp.path(), &cfg, &[], &[])
        .err()
        .expect("refused");
    assert!(e.contains("server.checkpoint_signing_key"), "{e}");
}
