//! Witnessing end to end through the binary: `auditlog witness` (a C2SP tlog-witness over
//! HTTP) cosigning the checkpoints that `auditlog checkpoint --signed --witness` sends it, the
//! cosigned checkpoint kept beside the log and carried by proofs (`verify-proof --witness
//! --quorum`), the witness killed (SIGKILL) and restarted keeping its state (a raw
//! `add-checkpoint` from old 0 is answered 409 with its size as text/x.tlog.size), a forked
//! log refused a cosignature, and `verify-checkpoints` reporting forks naming both files.
#![cfg(feature = "server")]

#[path = "common/cli.rs"]
mod cli_run;
mod common;
#[path = "common/server.rs"]
mod server;

use std::io::{BufRead, BufReader};

use cli_run::{err, ok, out, run};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const KEY: &str = "witness-cli-test-key-0123456789-abcdef";

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_auditlog"));
    c.env_remove("AUDITLOG_DATA")
        .env("AUDIT_HMAC_KEY", KEY)
        .env_remove("RUST_LOG");
    c
}

fn cli(data: &Path, args: &[&str]) -> Command {
    let mut c = bin();
    c.arg("--data").arg(data).args(args);
    c
}

fn append(data: &Path, seed: u64, n: usize) {
    let input: String = common::events(seed, n)
        .iter()
        .map(|e| format!("{}\n", serde_json::to_string(e).unwrap()))
        .collect();
    ok(&run(cli(data, &["append"]), &input));
}

fn keygen(dir: &Path, name: &str, cosigner: bool) -> (PathBuf, String) {
    let f = dir.join(format!("{}.key", name.replace('/', "_")));
    let mut args = vec!["keygen", "--name", name, "--out", f.to_str().unwrap()];
    if cosigner {
        args.push("--cosigner");
    }
    let v = ok(&run(bin().args(&args), "")).trim().to_string();
    (f, v)
}

struct WitnessProc {
    child: Child,
    url: String,
}

impl Drop for WitnessProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_witness(key: &Path, log_vkey: &str, state: &Path) -> WitnessProc {
    let mut child = bin()
        .args(["witness", "--key"])
        .arg(key)
        .args(["--log", log_vkey, "--state"])
        .arg(state)
        .args(["--listen", "127.0.0.1:0", "--prefix", "/w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn auditlog witness");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(u) = l.strip_prefix("listening on ") {
                    break u.trim().to_string();
                }
            }
            _ => panic!("auditlog witness exited: {:?}", child.wait()),
        }
    };
    std::thread::spawn(move || for _ in lines {});
    assert!(url.ends_with("/w"), "{url}");
    WitnessProc { child, url }
}

/// POSTs an add-checkpoint body; (status, content type, body).
fn post(url: &str, body: &str) -> (u16, String, String) {
    let r = match ureq::post(&format!("{url}/add-checkpoint")).send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    (
        r.status(),
        r.content_type().to_string(),
        r.into_string().unwrap(),
    )
}

fn checkpoint_note(data: &Path) -> String {
    std::fs::read_to_string(data.join("merkle/checkpoint")).unwrap()
}

#[test]
fn a_witness_cosigns_the_log_keeps_its_state_and_refuses_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = t.join("data");
    let (lkey, lvkey) = keygen(t, "audit.example.com/witnessed", false);
    let (wkey, wvkey) = keygen(t, "witness.example.com/w1", true);
    assert!(wvkey.starts_with("witness.example.com/w1+"), "{wvkey}");
    // A note key is not a witness key, and the other way round.
    let bad = run(
        bin()
            .args(["witness", "--key"])
            .arg(&lkey)
            .args(["--log", &lvkey, "--state"])
            .arg(t.join("nostate")),
        "",
    );
    assert!(!bad.status.success());
    assert!(err(&bad).contains("cosignature/v1"), "{}", err(&bad));

    let state = t.join("wstate");
    let w = start_witness(&wkey, &lvkey, &state);
    let target = format!("{} {wvkey}", w.url);
    let lk = lkey.to_str().unwrap();

    append(&data, 1, 10);
    let note1 = ok(&run(
        cli(
            &data,
            &["checkpoint", "--signed", "--key", lk, "--witness", &target],
        ),
        "",
    ));
    assert!(
        note1.contains("\n\u{2014} witness.example.com/w1 "),
        "{note1}"
    );
    assert_eq!(checkpoint_note(&data), note1, "kept beside the log");

    // The log grew: the witness cosigned 10 (its cosignature is on the kept checkpoint), so
    // it is asked with a consistency proof from 10.
    append(&data, 2, 300);
    let o = run(
        cli(
            &data,
            &["checkpoint", "--signed", "--key", lk, "--witness", &target],
        ),
        "",
    );
    let note2 = ok(&o);
    assert!(
        note2.starts_with("audit.example.com/witnessed\n310\n"),
        "{note2}"
    );
    assert!(err(&o).contains("cosigned at"), "{}", err(&o));
    assert_eq!(note2.matches("\u{2014} witness.example.com/w1 ").count(), 1);

    // Proofs carry the cosignature; verify-proof checks it with the witness key.
    let proof = t.join("p.json");
    std::fs::write(&proof, ok(&run(cli(&data, &["prove", "--seq", "5"]), ""))).unwrap();
    let p = proof.to_str().unwrap();
    let v = ok(&run(
        bin().args([
            "verify-proof",
            "--key",
            &lvkey,
            "--proof",
            p,
            "--witness",
            &wvkey,
        ]),
        "",
    ));
    assert!(v.contains("cosigned by witness.example.com/w1+"), "{v}");
    // Another witness key: the quorum of 1 is not met.
    let (_, other) = keygen(t, "witness.example.com/w2", true);
    let o = run(
        bin().args([
            "verify-proof",
            "--key",
            &lvkey,
            "--proof",
            p,
            "--witness",
            &other,
        ]),
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        err(&o).contains("0 valid witness cosignature(s), 1 needed"),
        "{}",
        err(&o)
    );
    // Quorum 1 of the two witnesses is met.
    ok(&run(
        bin().args([
            "verify-proof",
            "--key",
            &lvkey,
            "--proof",
            p,
            "--witness",
            &wvkey,
            "--witness",
            &other,
            "--quorum",
            "1",
        ]),
        "",
    ));
    // A receipt carries it too.
    let rc = t.join("p.tlog-proof");
    std::fs::write(
        &rc,
        ok(&run(
            cli(&data, &["prove", "--seq", "5", "--format", "tlog-proof"]),
            "",
        )),
    )
    .unwrap();
    ok(&run(
        bin().args([
            "verify-proof",
            "--key",
            &lvkey,
            "--proof",
            rc.to_str().unwrap(),
            "--witness",
            &wvkey,
        ]),
        "",
    ));

    // Crash the witness (SIGKILL) and restart it on the same state.
    drop(w);
    let w = start_witness(&wkey, &lvkey, &state);
    let target = format!("{} {wvkey}", w.url);
    let (st, ct, body) = post(&w.url, &format!("old 0\n\n{}", note2));
    assert_eq!(
        (st, ct.as_str(), body.as_str()),
        (409, "text/x.tlog.size", "310\n")
    );
    // An unknown origin: 404; garbage: 400; a signature that does not verify: 403.
    let stranger = auditlog::note::SignerKey::generate("elsewhere.example/log").unwrap();
    let foreign = stranger
        .sign("elsewhere.example/log\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
        .unwrap();
    assert_eq!(post(&w.url, &format!("old 0\n\n{foreign}")).0, 404);
    assert_eq!(post(&w.url, "hello\n").0, 400);
    let forged = note2.replacen("\n310\n", "\n311\n", 1);
    assert_eq!(post(&w.url, &format!("old 310\n\n{forged}")).0, 403);
    // A bad proof: 422.
    append(&data, 3, 5);
    let signed315 = ok(&run(
        cli(&data, &["checkpoint", "--signed", "--key", lk]),
        "",
    ));
    let o = run(cli(&data, &["prove-consistency", "310", "315"]), "");
    let cp: auditlog::transparency::ConsistencyProof = serde_json::from_str(&ok(&o)).unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut hashes = cp.hashes.clone();
    let mut h0 = b64.decode(&hashes[0]).unwrap();
    h0[0] ^= 1;
    hashes[0] = b64.encode(h0);
    let (st, _, _) = post(
        &w.url,
        &format!("old 310\n{}\n\n{signed315}", hashes.join("\n")),
    );
    assert_eq!(st, 422);
    // The good one through the CLI (the witness is asked again from 0 and told 310).
    ok(&run(
        cli(
            &data,
            &["checkpoint", "--signed", "--key", lk, "--witness", &target],
        ),
        "",
    ));

    // A fork: another log under the same key, the same size, other records.
    let forked = t.join("forked");
    append(&forked, 9, 315);
    let o = run(
        cli(
            &forked,
            &["checkpoint", "--signed", "--key", lk, "--witness", &target],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        err(&o).contains("409") && err(&o).contains("fork"),
        "{}",
        err(&o)
    );
    assert!(
        !checkpoint_note(&forked).contains("witness.example.com/w1"),
        "no cosignature on the fork"
    );
    let evidence = std::fs::read_dir(state.join("evidence")).unwrap().count();
    assert!(evidence >= 1, "the fork is kept as evidence");
    // A larger fork: the witness holds 315 and the fork's proof from 315 does not verify.
    append(&forked, 10, 20);
    let o = run(
        cli(
            &forked,
            &["checkpoint", "--signed", "--key", lk, "--witness", &target],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("422"), "{}", err(&o));
}

#[test]
fn verify_checkpoints_reports_forks_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (lkey, lvkey) = keygen(t, "audit.example.com/forks", false);
    let lk = lkey.to_str().unwrap();
    let a = t.join("a");
    let b = t.join("b");
    let sign = |data: &Path, file: &str| {
        let f = t.join(file);
        ok(&run(
            cli(
                data,
                &[
                    "checkpoint",
                    "--signed",
                    "--key",
                    lk,
                    "--out",
                    f.to_str().unwrap(),
                ],
            ),
            "",
        ));
        f
    };
    append(&a, 1, 20);
    let a20 = sign(&a, "a20");
    append(&a, 2, 30);
    let a50 = sign(&a, "a50");
    append(&b, 7, 20);
    let b20 = sign(&b, "b20");
    append(&b, 8, 40);
    let b60 = sign(&b, "b60");
    let s = |p: &PathBuf| p.to_str().unwrap().to_string();
    let nodata = t.join("nodata");

    // Consistent, proven from the tree in --data.
    let o = run(
        cli(
            &a,
            &["verify-checkpoints", "--key", &lvkey, &s(&a20), &s(&a50)],
        ),
        "",
    );
    let text = ok(&o);
    assert!(text.contains("ok: 2 checkpoint(s)"), "{text}");
    assert!(text.contains("agrees with the tree"), "{text}");

    // Same size, different roots.
    let o = run(
        cli(
            &nodata,
            &["verify-checkpoints", "--key", &lvkey, &s(&a20), &s(&b20)],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "FORK: {} and {} are both signed checkpoints of size 20",
            s(&a20),
            s(&b20)
        )),
        "{text}"
    );

    // Different sizes: no valid consistency proof from a20 to b60 in a's tree.
    let o = run(
        cli(
            &a,
            &["verify-checkpoints", "--key", &lvkey, &s(&a20), &s(&b60)],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(
        text.contains(&format!(
            "FORK: no valid consistency proof from {} (size 20) to {} (size 60)",
            s(&a20),
            s(&b60)
        )),
        "{text}"
    );

    // Without a tree here, a consistency proof file (from `prove-consistency`) decides.
    let pf = t.join("p20-50.json");
    std::fs::write(
        &pf,
        ok(&run(cli(&a, &["prove-consistency", "20", "50"]), "")),
    )
    .unwrap();
    let o = run(
        cli(
            &nodata,
            &[
                "verify-checkpoints",
                "--key",
                &lvkey,
                "--proof",
                &s(&pf),
                &s(&a20),
                &s(&a50),
            ],
        ),
        "",
    );
    ok(&o);
    // a's proof does not take b's 20 to a's 50.
    let o = run(
        cli(
            &nodata,
            &[
                "verify-checkpoints",
                "--key",
                &lvkey,
                "--proof",
                &s(&pf),
                &s(&b20),
                &s(&a50),
            ],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains("FORK: no valid consistency proof"),
        "{}",
        out(&o)
    );
    // No tree and no proof: reported, not passed.
    let o = run(
        cli(
            &nodata,
            &["verify-checkpoints", "--key", &lvkey, &s(&a20), &s(&a50)],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("no tree of size 50 here"), "{}", out(&o));

    // A checkpoint that does not verify is named (not a fork).
    let forged = t.join("forged");
    std::fs::write(
        &forged,
        std::fs::read_to_string(&a20)
            .unwrap()
            .replacen("\n20\n", "\n21\n", 1),
    )
    .unwrap();
    let o = run(
        cli(
            &a,
            &["verify-checkpoints", "--key", &lvkey, &s(&a20), &s(&forged)],
        ),
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        out(&o).contains(&format!("{}: NOT a validly signed checkpoint", s(&forged))),
        "{}",
        out(&o)
    );
}

#[test]
fn the_server_asks_its_witnesses_on_the_admin_route() {
    use server::{config_json, seed_event, Server, ADMIN, INGESTER, READER};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (lkey, lvkey) = keygen(t, "audit.example.com/served", false);
    let (wkey, wvkey) = keygen(t, "witness.example.com/served", true);
    let w = start_witness(&wkey, &lvkey, &t.join("wstate"));
    let target = format!("{} {wvkey}", w.url);
    let cfg = config_json(
        "",
        &format!(
            r#""checkpoint_signing_key": {}, "witnesses": [{}], "witness_quorum": 1"#,
            serde_json::json!(lkey),
            serde_json::json!(target)
        ),
    );
    let sdir = t.join("srv");
    std::fs::create_dir_all(&sdir).unwrap();
    let s = Server::start(&sdir, &cfg, &[]);
    let evs: Vec<serde_json::Value> = (0..12)
        .map(|i| seed_event(&format!("evt-w-{i}"), i))
        .collect();
    assert_eq!(
        s.post_json("/api/audit-logs", Some(INGESTER), &serde_json::json!(evs))
            .status,
        200
    );
    let route = "/api/audit-logs/checkpoint/witness";
    assert_eq!(s.post(route, Some(READER), "text/plain", b"").status, 403);
    let mut sizes = Vec::new();
    for round in 0..2 {
        let r = s.post(route, Some(ADMIN), "text/plain", b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["quorum_met"], true, "{v}");
        assert!(v["witnesses"][0]["cosigned_at"].is_u64(), "{v}");
        let note = v["checkpoint"].as_str().unwrap();
        assert!(
            note.contains("\n\u{2014} witness.example.com/served "),
            "{note}"
        );
        let wk = auditlog::note::VerifierKey::parse(&wvkey).unwrap();
        assert_eq!(auditlog::note::cosignatures(note, &[wk]).unwrap().len(), 1);
        let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
        sizes.push(size);
        // A consistency proof to that size carries the cosigned checkpoint.
        let r = s.get(
            &format!("/api/audit-logs/consistency?old=1&new={size}"),
            Some(READER),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let pf = t.join(format!("cons{round}.json"));
        std::fs::write(&pf, r.text()).unwrap();
        ok(&run(
            bin().args([
                "verify-proof",
                "--key",
                &lvkey,
                "--proof",
                pf.to_str().unwrap(),
                "--witness",
                &wvkey,
            ]),
            "",
        ));
    }
    assert!(sizes[1] > sizes[0], "{sizes:?}");
    drop(s);

    // Without witnesses configured: 409; witnesses without a signing key: refused at start.
    let plain = t.join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let s = Server::start(&plain, &config_json("", ""), &[]);
    let r = s.post(route, Some(ADMIN), "text/plain", b"");
    assert_eq!(r.status, 409, "{}", r.text());
    drop(s);
    let bad = t.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let e = Server::try_start(
        &bad,
        &config_json(
            "",
            &format!(r#""witnesses": [{}]"#, serde_json::json!(target)),
        ),
        &[],
        &[],
    )
    .err()
    .expect("refused");
    assert!(
        e.contains("server.witnesses needs server.checkpoint_signing_key"),
        "{e}"
    );
}

#[test]
fn the_server_asks_its_witnesses_on_a_schedule() {
    use server::{config_json, seed_event, Server, ADMIN, INGESTER};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (lkey, lvkey) = keygen(t, "audit.example.com/scheduled", false);
    let (wkey, wvkey) = keygen(t, "witness.example.com/scheduled", true);
    let w = start_witness(&wkey, &lvkey, &t.join("wstate"));
    let target = format!("{} {wvkey}", w.url);
    let cfg = config_json(
        "",
        &format!(
            r#""checkpoint_signing_key": {}, "witnesses": [{}], "witness_interval_secs": 1"#,
            serde_json::json!(lkey),
            serde_json::json!(target)
        ),
    );
    let sdir = t.join("srv");
    std::fs::create_dir_all(&sdir).unwrap();
    let s = Server::start(&sdir, &cfg, &[]);
    let evs: Vec<serde_json::Value> = (0..20)
        .map(|i| seed_event(&format!("evt-s-{i}"), i))
        .collect();
    assert_eq!(
        s.post_json("/api/audit-logs", Some(INGESTER), &serde_json::json!(evs))
            .status,
        200
    );
    // No request asks the witness: the schedule does, within a few rounds.
    let metric = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let witnessed = loop {
        let m = s.get("/metrics", Some(ADMIN));
        assert_eq!(m.status, 200, "{}", m.text());
        let text = m.text();
        let size = metric(&text, "auditlog_witnessed_tree_size");
        if size >= 20 && metric(&text, "auditlog_witness_rounds_total") >= 1 {
            assert_eq!(metric(&text, "auditlog_witness_cosignatures"), 1, "{text}");
            break size;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled witness round within 60 s:\n{text}\n{}",
            s.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // The kept checkpoint carries the witness's cosignature, of a size at least the one
    // the metric names (later rounds may have cosigned a larger tree since).
    let note = std::fs::read_to_string(sdir.join("data/merkle/checkpoint")).unwrap();
    let wk = auditlog::note::VerifierKey::parse(&wvkey).unwrap();
    assert_eq!(
        auditlog::note::cosignatures(&note, &[wk]).unwrap().len(),
        1,
        "{note}"
    );
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert!(size >= witnessed, "{size} < {witnessed}");
    // Shutdown ends the schedule.
    assert!(s.terminate().success());

    // A schedule without witnesses is refused at start.
    let bad = t.join("bad-schedule");
    std::fs::create_dir_all(&bad).unwrap();
    let e = Server::try_start(
        &bad,
        &config_json("", r#""witness_interval_secs": 5"#),
        &[],
        &[],
    )
    .err()
    .expect("refused");
    assert!(
        e.contains("server.witness_interval_secs needs server.witnesses"),
        "{e}"
    );
}
