//! Invariant: redaction (`redact`, `redact_seqs`, `redact_actor`) replaces a record's personal
//! data (or only its content) by a key-signed redaction marker carrying the original digest:
//! the data is gone from the directory, every chain value is unchanged and the log verifies,
//! reads and queries return the event marked redacted, and each redaction is itself recorded
//! as an `audit_log` event; a redaction marker edited or forged without the key makes
//! `verify` report a tampered record at that seq.

mod common;
mod retention_support;

use std::fs;
use std::path::Path;

use auditlog::{Chain, Error, Event, FailureKind, HmacKey, Log, Query, Receipt, RedactionScope};
use retention_support::*;

const SECRET_EMAIL: &str = "alice.secret@example.org";
const SECRET_DETAIL: &str = "ssn-123-45-6789";
/// The record carrying the secrets (in the first, sealed segment).
const SECRET_SEQ: u64 = 10;

fn events() -> Vec<Event> {
    let mut evs = spread(1..=10, 48);
    let e = &mut evs[SECRET_SEQ as usize];
    e.actor.user_id = Some("user-alice".into());
    e.actor.email = Some(SECRET_EMAIL.into());
    e.details = serde_json::json!({"note": SECRET_DETAIL}).into();
    evs
}

fn setup(dir: &Path) -> (Vec<Event>, Vec<Receipt>) {
    let evs = events();
    let receipts = write(dir, &evs);
    let sp = spans(dir);
    assert!(
        sp.len() >= 3 && sp[0].sealed && sp[0].last > SECRET_SEQ,
        "{sp:?}"
    );
    (evs, receipts)
}

/// Whether any file of the directory contains `needle`.
fn dir_contains(dir: &Path, needle: &str) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let b = fs::read(p).unwrap();
            b.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .map(|p| common::file_name(&p))
        .collect()
}

/// Every record but `except` still reads exactly as appended.
fn others_unchanged(log: &Log, evs: &[Event], receipts: &[Receipt], except: &[u64]) {
    for r in log.iter() {
        let r = r.unwrap();
        if r.seq as usize >= evs.len() {
            continue;
        }
        assert_eq!(
            r.hash, receipts[r.seq as usize].hash,
            "chain value of {}",
            r.seq
        );
        if except.contains(&r.seq) {
            continue;
        }
        assert!(r.redacted.is_none(), "seq {} is not redacted", r.seq);
        assert_eq!(r.event.actor, evs[r.seq as usize].actor);
        assert_eq!(r.event.details, evs[r.seq as usize].details);
    }
}

fn assert_personal_redacted(
    log: &Log,
    evs: &[Event],
    receipts: &[Receipt],
    seq: u64,
    reason: &str,
) {
    let r = log
        .get(seq)
        .unwrap()
        .expect("a redacted record is still there");
    let orig = &evs[seq as usize];
    let info = r.redacted.as_ref().expect("marked redacted");
    assert_eq!(info.reason, reason);
    assert_eq!(info.scope, RedactionScope::Personal);
    assert_eq!(
        r.event.actor,
        auditlog::Actor::default(),
        "user_id, email and IP are gone"
    );
    assert!(r.event.details.is_null(), "details are gone");
    // Everything else is kept.
    assert_eq!(
        r.event.event_id.as_ref(),
        Some(&receipts[seq as usize].event_id)
    );
    assert_eq!(r.event.timestamp, orig.timestamp);
    assert_eq!(
        (
            &r.event.event_type,
            &r.event.action,
            &r.event.status,
            r.event.severity
        ),
        (&orig.event_type, &orig.action, &orig.status, orig.severity)
    );
    assert_eq!(
        r.hash, receipts[seq as usize].hash,
        "the chain value is unchanged"
    );
}

/// The `audit_log` event recording a redaction.
fn audit_event(log: &Log, seq: u64) -> Event {
    let e = log.get(seq).unwrap().unwrap().event;
    assert_eq!(
        (e.event_type.as_str(), e.action.as_str()),
        ("audit_log", "record_redacted")
    );
    e
}

#[test]
fn redacting_a_sealed_record_keeps_the_chain_and_marks_the_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (evs, receipts) = setup(&dir);
    assert!(!dir_contains(&dir, SECRET_EMAIL).is_empty());
    let log = reopen(&dir, 0);
    let external = log.checkpoint().unwrap();
    let reason = "GDPR erasure request #17";
    let report = log.redact(SECRET_SEQ, reason).unwrap();
    assert_eq!(report.redacted, vec![SECRET_SEQ]);
    assert!(report.already_redacted.is_empty());
    let audit_seq = report.audit_seq.expect("the redaction is recorded");
    assert_eq!(audit_seq, evs.len() as u64, "appended as the next event");

    assert_personal_redacted(&log, &evs, &receipts, SECRET_SEQ, reason);
    others_unchanged(&log, &evs, &receipts, &[SECRET_SEQ]);
    let e = audit_event(&log, audit_seq);
    assert_eq!(
        e.details.to_value()["redacted_seqs"],
        serde_json::json!([SECRET_SEQ])
    );
    assert_eq!(e.details.to_value()["count"], serde_json::json!(1));
    assert_eq!(e.details.to_value()["reason"], serde_json::json!(reason));
    assert_eq!(e.details.to_value()["scope"], serde_json::json!("personal"));

    // The personal data is physically gone (segment and index files alike).
    assert_eq!(dir_contains(&dir, SECRET_EMAIL), Vec::<String>::new());
    assert_eq!(dir_contains(&dir, SECRET_DETAIL), Vec::<String>::new());

    // Queries return it marked redacted (and verified), and no longer find it by its actor.
    let t = auditlog::format_ts(ns(evs[SECRET_SEQ as usize].timestamp.unwrap()));
    let page = log
        .query(&Query::from_params([("start", t.as_str()), ("end", t.as_str())]).unwrap())
        .unwrap();
    assert_eq!(page.total_count, 1);
    let hit = &page.audit_logs[0];
    assert_eq!(hit.seq, SECRET_SEQ);
    assert_eq!(hit.redacted.as_ref().unwrap().reason, reason);
    assert!(hit.verification.verified);
    assert!(hit.event.actor.user_id.is_none() && hit.event.details.is_null());
    let json = serde_json::to_value(hit).unwrap();
    assert_eq!(json["redacted"]["scope"], "personal");
    for (p, v) in [("user_id", "user-alice"), ("email", SECRET_EMAIL)] {
        let q = Query::from_params([(p, v)]).unwrap();
        assert_eq!(log.query(&q).unwrap().total_count, 0, "query by {p}");
    }
    let q =
        Query::from_params([("event_type", "audit_log"), ("action", "record_redacted")]).unwrap();
    assert_eq!(log.query(&q).unwrap().total_count, 1);

    assert_ok(
        &log.verify_with(std::slice::from_ref(&external)).unwrap(),
        "after redaction",
    );
    drop(log);
    assert_ok(
        &verify_ro_with(&dir, std::slice::from_ref(&external)),
        "after redaction, read-only",
    );
    let log = reopen(&dir, 0);
    assert_personal_redacted(&log, &evs, &receipts, SECRET_SEQ, reason);
    assert_ok(&log.verify().unwrap(), "reopened");
}

#[test]
fn redacting_a_record_in_the_active_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (mut evs, mut receipts) = setup(&dir);
    let log = reopen(&dir, 0);
    // A fresh record with secrets, in the active (unsealed) segment.
    let mut e = Event::new("authentication", "user_login");
    e.timestamp = Some(at(11, 0));
    e.actor.user_id = Some("user-bob".into());
    e.actor.email = Some("bob.private@example.net".into());
    e.actor.ip_address = Some("192.0.2.77".parse().unwrap());
    e.details = serde_json::json!({"token": "tok-secret-998877"}).into();
    let rc = log.append(&e).unwrap();
    evs.push(e);
    receipts.push(rc.clone());
    // The files on disk are inspected below: the record must be out of the staging file.
    log.flush().unwrap();
    let active = spans(&dir).last().unwrap().clone();
    assert!(!active.sealed && (active.first..=active.last).contains(&rc.seq));

    let report = log.redact(rc.seq, "user asked").unwrap();
    assert_eq!(report.redacted, vec![rc.seq]);
    assert_personal_redacted(&log, &evs, &receipts, rc.seq, "user asked");
    others_unchanged(&log, &evs, &receipts, &[rc.seq]);
    audit_event(&log, report.audit_seq.unwrap());
    assert_eq!(
        dir_contains(&dir, "bob.private@example.net"),
        Vec::<String>::new()
    );
    assert_eq!(
        dir_contains(&dir, "tok-secret-998877"),
        Vec::<String>::new()
    );
    assert_ok(
        &log.verify().unwrap(),
        "after redacting in the active segment",
    );

    // Appends go on and the log still verifies.
    let more = log.append_batch(&spread(12..=12, 20)).unwrap();
    assert_eq!(more[0].seq, report.audit_seq.unwrap() + 1);
    assert_ok(&log.verify().unwrap(), "after more appends");
    drop(log);
    assert_ok(&verify_ro(&dir), "after more appends, read-only");
    let log = reopen(&dir, 0);
    assert_personal_redacted(&log, &evs, &receipts, rc.seq, "user asked");
}

#[test]
fn redact_actor_erases_every_event_of_one_data_subject() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (evs, receipts) = setup(&dir);
    let log = reopen(&dir, 0);
    let user = "user-3";
    let want: Vec<u64> = evs
        .iter()
        .enumerate()
        .filter(|(_, e)| e.actor.user_id.as_deref() == Some(user))
        .map(|(i, _)| i as u64)
        .collect();
    let last_seg = spans(&dir).last().unwrap().clone();
    assert!(want.len() > 50);
    assert!(
        want.iter().any(|&s| s >= last_seg.first),
        "some of them are in the active segment"
    );
    assert_eq!(log.export_seqs_of_actor(user).unwrap(), want);

    let report = log.redact_actor(user, "erasure request 42").unwrap();
    assert_eq!(report.redacted, want, "one call redacts all of them");
    for &s in &want {
        assert_personal_redacted(&log, &evs, &receipts, s, "erasure request 42");
    }
    others_unchanged(&log, &evs, &receipts, &want);
    let audit = audit_event(&log, report.audit_seq.unwrap());
    assert_eq!(
        audit.details.to_value()["count"],
        serde_json::json!(want.len())
    );
    assert_eq!(
        audit.details.to_value()["redacted_seqs"],
        serde_json::json!(want)
    );

    for (p, v) in [("user_id", user), ("email", "user-3@example.com")] {
        let q = Query::from_params([(p, v)]).unwrap();
        assert_eq!(log.query(&q).unwrap().total_count, 0, "query by {p}");
    }
    assert!(log.export_seqs_of_actor(user).unwrap().is_empty());
    match log.redact_actor(user, "again") {
        Err(Error::InvalidQuery { param, .. }) => assert_eq!(param, "user_id"),
        other => panic!("no events of that actor remain: {other:?}"),
    }
    assert_eq!(
        dir_contains(&dir, "user-3@example.com"),
        Vec::<String>::new()
    );
    assert_ok(&log.verify().unwrap(), "after redact_actor");
    drop(log);
    assert_ok(&verify_ro(&dir), "after redact_actor, read-only");
}

#[test]
fn content_scope_keeps_the_actor_and_drops_details() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (evs, receipts) = setup(&dir);
    let log = reopen(&dir, 0);
    let seqs = [SECRET_SEQ, 200, 300];
    let report = log
        .redact_seqs(&seqs, "content retention", RedactionScope::Content)
        .unwrap();
    assert_eq!(report.redacted, seqs.to_vec());
    for &s in &seqs {
        let r = log.get(s).unwrap().unwrap();
        let info = r.redacted.unwrap();
        assert_eq!(info.scope, RedactionScope::Content);
        assert_eq!(info.reason, "content retention");
        assert_eq!(r.event.actor, evs[s as usize].actor, "the actor is kept");
        assert!(r.event.details.is_null(), "details are gone");
        assert_eq!(r.hash, receipts[s as usize].hash);
    }
    others_unchanged(&log, &evs, &receipts, &seqs);
    assert_eq!(
        audit_event(&log, report.audit_seq.unwrap())
            .details
            .to_value()["scope"],
        "content"
    );
    let q = Query::from_params([("email", SECRET_EMAIL)]).unwrap();
    let page = log.query(&q).unwrap();
    assert_eq!(page.total_count, 1, "still found by its actor");
    assert_eq!(
        page.audit_logs[0].redacted.as_ref().unwrap().scope,
        RedactionScope::Content
    );
    assert_eq!(dir_contains(&dir, SECRET_DETAIL), Vec::<String>::new());
    assert_ok(&log.verify().unwrap(), "after content redaction");
}

#[test]
fn redacting_twice_or_without_a_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (evs, receipts) = setup(&dir);
    let log = reopen(&dir, 0);
    for bad in ["", "   "] {
        assert!(
            matches!(log.redact(SECRET_SEQ, bad), Err(Error::InvalidEvent(_))),
            "reason {bad:?}"
        );
    }
    let next = log.next_seq();
    assert!(log.redact(next, "past the end").is_err());
    assert_eq!(log.next_seq(), next, "nothing was recorded");
    others_unchanged(&log, &evs, &receipts, &[]);

    log.redact(SECRET_SEQ, "first").unwrap();
    let next = log.next_seq();
    let again = log.redact(SECRET_SEQ, "second").unwrap();
    assert!(again.redacted.is_empty());
    assert_eq!(again.already_redacted, vec![SECRET_SEQ]);
    assert_eq!(again.audit_seq, None);
    assert_eq!(log.next_seq(), next, "no audit event for a no-op");
    assert_eq!(
        log.get(SECRET_SEQ)
            .unwrap()
            .unwrap()
            .redacted
            .unwrap()
            .reason,
        "first"
    );
    let mixed = log
        .redact_seqs(&[SECRET_SEQ, 11], "third", RedactionScope::Personal)
        .unwrap();
    assert_eq!(mixed.redacted, vec![11]);
    assert_eq!(mixed.already_redacted, vec![SECRET_SEQ]);
    assert_ok(&log.verify().unwrap(), "after repeated redactions");
    drop(log);
    let ro = Log::open_read_only(&dir, key()).unwrap();
    assert!(matches!(ro.redact(12, "x"), Err(Error::ReadOnly)));
}

fn unhex<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

const FRAME_PAYLOAD: usize = 28;
const FRAME_FLAGS: usize = 8;

/// A closed log with SECRET_SEQ redacted; returns the segment path, the frame, and log id.
fn redacted_log(dir: &Path) -> (std::path::PathBuf, common::FrameAt, [u8; 16]) {
    setup(dir);
    let log = reopen(dir, 0);
    log.redact(SECRET_SEQ, "erasure").unwrap();
    let id = unhex::<16>(&log.log_id());
    drop(log);
    assert_ok(&verify_ro(dir), "untouched");
    let seg = common::layouts(dir)
        .into_iter()
        .find(|l| l.frames.iter().any(|f| f.seq == SECRET_SEQ))
        .unwrap();
    let f = *seg.frames.iter().find(|f| f.seq == SECRET_SEQ).unwrap();
    (seg.path, f, id)
}

fn edit_frame(path: &Path, f: common::FrameAt, edit: impl FnOnce(&mut [u8])) {
    let mut bytes = fs::read(path).unwrap();
    edit(&mut bytes[f.offset..f.offset + f.len]);
    common::fix_frame_crc(&mut bytes, f);
    fs::write(path, bytes).unwrap();
}

fn assert_tampered_at(dir: &Path, seg: &Path, f: common::FrameAt, what: &str) {
    let r = verify_ro(dir);
    let (kind, seq, segment, offset) = common::failure_of(&r);
    assert_eq!(kind, FailureKind::TamperedRecord, "{what}: {r:?}");
    assert_eq!(seq, Some(SECRET_SEQ), "{what}");
    assert_eq!(segment, Some(common::file_name(seg)), "{what}");
    assert_eq!(offset, Some(f.offset as u64), "{what}");
}

#[test]
fn forged_or_edited_redactions_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let (seg, f, log_id) = redacted_log(&base);
    let copy = |name: &str| {
        let d = tmp.path().join(name);
        common::copy_dir(&base, &d);
        let p = d.join(common::file_name(&seg));
        (d, p)
    };
    let bytes = fs::read(&seg).unwrap();
    let frame = &bytes[f.offset..f.offset + f.len];
    assert_eq!(
        u16::from_le_bytes([frame[FRAME_FLAGS], frame[FRAME_FLAGS + 1]]) & 1,
        1,
        "the frame is flagged redacted"
    );
    let payload = &frame[FRAME_PAYLOAD..f.len - 36];
    assert_eq!(payload[0], 0x52, "redaction marker");
    let reason_len = u16::from_le_bytes([payload[65], payload[66]]) as usize;
    assert_eq!(&payload[67..67 + reason_len], b"erasure");

    // The reason edited (same length), CRC fixed.
    let (d, p) = copy("reason");
    edit_frame(&p, f, |fr| fr[FRAME_PAYLOAD + 67] = b'E');
    assert_tampered_at(&d, &p, f, "edited reason");

    // The stored original digest changed.
    let (d, p) = copy("digest");
    edit_frame(&p, f, |fr| fr[FRAME_PAYLOAD + 1] ^= 0x01);
    assert_tampered_at(&d, &p, f, "edited digest");

    // The kept event edited: one character of its event_id (still a well-formed marker).
    let (d, p) = copy("kept");
    let id_char = FRAME_PAYLOAD + 68 + reason_len + 1;
    edit_frame(&p, f, |fr| fr[id_char] ^= 0x01);
    assert_tampered_at(&d, &p, f, "edited kept event");

    // The redaction signed with another key: the MAC recomputed over the same digest and
    // tail with the log's key reproduces the stored one; with another key it does not pass.
    let tail = &payload[65..];
    let digest = &payload[1..33];
    let sign = |k: HmacKey| {
        Chain::new(&k).sign(
            b"auditlog/redaction/v1",
            &[&log_id, &SECRET_SEQ.to_le_bytes(), digest, tail],
        )
    };
    assert_eq!(
        &sign(key())[..],
        &payload[33..65],
        "the marker's MAC is understood"
    );
    let forged = sign(HmacKey::from_bytes(b"another key, also at least 32 bytes long").unwrap());
    let (d, p) = copy("other_key");
    edit_frame(&p, f, |fr| {
        fr[FRAME_PAYLOAD + 33..FRAME_PAYLOAD + 65].copy_from_slice(&forged)
    });
    assert_tampered_at(&d, &p, f, "redaction signed with another key");

    // The redaction flag cleared: the marker is then an ordinary payload whose digest is
    // not the one the chain covers.
    let (d, p) = copy("flag_cleared");
    edit_frame(&p, f, |fr| fr[FRAME_FLAGS] &= !1);
    assert_tampered_at(&d, &p, f, "redaction flag cleared");

    // An ordinary record flagged as redacted.
    let (d, p) = copy("flag_set");
    let plain = common::layout(&p)
        .frames
        .into_iter()
        .find(|x| x.seq == SECRET_SEQ + 1)
        .unwrap();
    edit_frame(&p, plain, |fr| fr[FRAME_FLAGS] |= 1);
    let r = verify_ro(&d);
    let (kind, seq, _, _) = common::failure_of(&r);
    assert_eq!(
        (kind, seq),
        (FailureKind::TamperedRecord, Some(SECRET_SEQ + 1))
    );
}

#[test]
fn crash_states_of_a_redaction_verify_and_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let (evs, receipts) = setup(&pristine);
    let done = tmp.path().join("done");
    common::copy_dir(&pristine, &done);
    let log = reopen(&done, 0);
    log.redact(SECRET_SEQ, "erasure").unwrap();
    drop(log);
    let seg_name = common::file_name(&common::segment_paths(&pristine)[0]);
    let redacted_seg = fs::read(done.join(&seg_name)).unwrap();
    let idx_name = seg_name.replace(".seg", ".idx");

    // Renamed into place, but the audit event not yet appended (the old index was removed
    // before the rename).
    let d = tmp.path().join("renamed");
    common::copy_dir(&pristine, &d);
    let _ = fs::remove_file(d.join(&idx_name));
    fs::write(d.join(&seg_name), &redacted_seg).unwrap();
    assert_ok(&verify_ro(&d), "redacted segment in place, read-only");
    let log = reopen(&d, 0);
    assert_personal_redacted(&log, &evs, &receipts, SECRET_SEQ, "erasure");
    others_unchanged(&log, &evs, &receipts, &[SECRET_SEQ]);
    let q = Query::from_params([("email", SECRET_EMAIL)]).unwrap();
    assert_eq!(log.query(&q).unwrap().total_count, 0);
    assert_ok(
        &log.verify().unwrap(),
        "redacted segment in place, after open",
    );
    drop(log);

    // The rewrite written under its temporary name only: the redaction did not happen.
    let d = tmp.path().join("tmp_only");
    common::copy_dir(&pristine, &d);
    let tmp_name = format!("{seg_name}.tmp");
    fs::write(d.join(&tmp_name), &redacted_seg[..redacted_seg.len() - 100]).unwrap();
    assert_ok(&verify_ro(&d), "leftover redaction .tmp, read-only");
    let log = reopen(&d, 0);
    assert!(!d.join(&tmp_name).exists(), "open removes the leftover");
    others_unchanged(&log, &evs, &receipts, &[]);
    assert_ok(
        &log.verify().unwrap(),
        "leftover redaction .tmp, after open",
    );
    // And the redaction can be done again.
    assert_eq!(
        log.redact(SECRET_SEQ, "erasure").unwrap().redacted,
        vec![SECRET_SEQ]
    );
    assert_ok(&log.verify().unwrap(), "redaction redone");
}

#[test]
fn a_seq_given_twice_is_redacted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let (evs, receipts) = setup(&dir);
    let log = reopen(&dir, 0);
    // `auditlog redact --seq 11 --seq 11` passes the seq twice.
    let r = log
        .redact_seqs(&[11, 11], "erasure", RedactionScope::Personal)
        .expect("a repeated seq is still a record in the log");
    assert_eq!(r.redacted, vec![11]);
    assert_personal_redacted(&log, &evs, &receipts, 11, "erasure");
}

/// Regression: a record in a segment that an append has just rolled, with its seal still
/// queued on the worker, was reported as "removed by retention" instead of being redacted.
#[test]
fn redaction_right_after_a_roll_waits_for_the_seal() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), write_opts()).unwrap();
    let mut acked = Vec::new();
    for chunk in spread(1..=6, 48).chunks(96) {
        acked.extend(log.append_batch(chunk).unwrap());
    }
    assert!(log.stats().unwrap().segments >= 2);
    let r = log.redact(acked[3].seq, "erasure request").unwrap();
    assert_eq!(r.redacted, vec![acked[3].seq]);
    assert!(log.verify().unwrap().ok);
}
