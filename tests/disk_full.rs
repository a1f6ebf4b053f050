//! A full disk is a clear error, never a crash: on a small real file system mounted by the
//! test (a 4 MiB tmpfs, and a 16 MiB ext4 image on a loop device), appends fail with
//! `Error::Io` (or `BatchInterrupted` carrying one) saying "No space left on device" and naming
//! the file, the log is not poisoned, the writing process is never killed (no SIGBUS), every
//! acknowledged event is still there with the same hash, and appends succeed again in the same
//! process once space is freed.
//!
//! The filling runs in a child process (this test binary re-executed with `disk_full_child`,
//! ignored unless `AUDITLOG_DISK_FULL_DIR` is set) so that a SIGBUS would show as the child's
//! death by signal instead of killing the test harness. The parent mounts the file system,
//! fills most of it with a filler file, runs the child, then reopens the log and checks what
//! the child was told. The child:
//! 1. appends (one event at a time, or in batches) until an append fails, printing a line
//!    for every receipt;
//! 2. checks that the error is the clean "no space" error, that further appends keep failing
//!    the same way (never `Poisoned`), that `flush` (the records it holds are already in
//!    allocated blocks) and `verify` still succeed, and that `checkpoint` either succeeds or
//!    fails with the same clean error;
//! 3. closes the log and reopens it on the still full disk (a restart while the disk is full);
//! 4. deletes the filler and appends several segments' worth of events, which must succeed.
//!
//! Needs root and permission to mount (and `mkfs.ext4` for the ext4 case). Where either is
//! missing, the case prints `skipped: cannot mount ... (reason)` to stderr and passes;
//! `tests/disk_full_failpoint.rs` makes the same checks with an injected ENOSPC and always
//! runs (`--features failpoints`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use auditlog::sample::Generator;
use auditlog::{hex, Durability, Error, Event, HmacKey, Log, Options, Receipt};

const DIR_ENV: &str = "AUDITLOG_DISK_FULL_DIR";
const FILLER_ENV: &str = "AUDITLOG_DISK_FULL_FILLER";
const DURABILITY_ENV: &str = "AUDITLOG_DISK_FULL_DURABILITY";
const BATCH_ENV: &str = "AUDITLOG_DISK_FULL_BATCH";
const KEY: &[u8] = b"disk-full test key: thirty-two bytes or more";
/// Free space left for the log once the filler is written.
const ROOM: u64 = 1 << 20;
/// The child gives up (and fails) after this long.
const CHILD_TIMEOUT: Duration = Duration::from_secs(300);
/// Events appended after the filler is deleted: several 64 KiB segments' worth.
const AFTER_FREE: usize = 800;

fn options(durability: Durability) -> Options {
    Options::new(HmacKey::from_bytes(KEY).unwrap())
        .durability(durability)
        .segment_bytes(64 * 1024)
}

fn durability_of(name: &str) -> Durability {
    match name {
        "sync" => Durability::Sync,
        "buffered" => Durability::Buffered,
        other => panic!("unknown durability {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------

/// Splits a failed append into the receipts it still carries (a `BatchInterrupted`) and
/// its message, after checking that it is the clean "no space" error naming a file of the
/// log. Panics (failing the child) on anything else, `Poisoned` included.
fn expect_enospc(err: Error, dir: &Path) -> (Vec<Receipt>, String) {
    let (appended, inner) = match err {
        Error::BatchInterrupted { appended, source } => (appended, *source),
        other => (Vec::new(), other),
    };
    let msg = inner.to_string();
    match &inner {
        Error::Io { path, source, .. } => {
            assert_eq!(
                source.raw_os_error(),
                Some(libc::ENOSPC),
                "expected ENOSPC: {msg}"
            );
            assert!(
                path.starts_with(dir) && path != dir,
                "the error names a file of the log: {msg}"
            );
        }
        Error::Poisoned(_) => panic!("the log poisoned itself on a full disk: {msg}"),
        other => panic!("expected Error::Io with ENOSPC, got {other:?}: {msg}"),
    }
    assert!(msg.contains("No space left on device"), "{msg}");
    (appended, msg)
}

struct Child {
    dir: PathBuf,
    batch: usize,
    gen: Generator,
    out: Mutex<std::io::Stdout>,
    acked: usize,
}

impl Child {
    fn say(&self, line: String) {
        let mut o = self.out.lock().unwrap();
        writeln!(o, "{line}").unwrap();
        o.flush().unwrap();
    }

    fn ack(&mut self, receipts: &[Receipt]) {
        for r in receipts {
            self.say(format!("ACK {} {}", r.seq, hex(&r.hash)));
        }
        self.acked += receipts.len();
    }

    fn next_events(&mut self) -> Vec<Event> {
        (0..self.batch).map(|_| self.gen.next_event()).collect()
    }

    /// One append (or batch): the receipts, or the error.
    fn append(&mut self, log: &Log) -> Result<Vec<Receipt>, Error> {
        let events = self.next_events();
        if self.batch == 1 {
            log.append(&events[0]).map(|r| vec![r])
        } else {
            log.append_batch(&events)
        }
    }
}

#[test]
#[ignore = "child process of tmpfs_full_disk and ext4_full_disk"]
fn disk_full_child() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let filler = PathBuf::from(std::env::var_os(FILLER_ENV).unwrap());
    let durability = durability_of(&std::env::var(DURABILITY_ENV).unwrap());
    let batch: usize = std::env::var(BATCH_ENV).unwrap().parse().unwrap();
    let mut c = Child {
        dir: dir.clone(),
        batch,
        gen: Generator::standard(42),
        out: Mutex::new(std::io::stdout()),
        acked: 0,
    };
    let log = Log::open(&dir, options(durability)).expect("open the log on the small fs");

    // 1. Fill.
    let started = Instant::now();
    let mut attempts = 0u64;
    let first = loop {
        attempts += 1;
        assert!(attempts < 1_000_000, "the file system never filled up");
        match c.append(&log) {
            Ok(rs) => {
                c.ack(&rs);
                if durability == Durability::Buffered && attempts.is_multiple_of(64) {
                    log.flush().expect("flush while filling");
                }
            }
            Err(e) => break e,
        }
    };
    let (appended, msg) = expect_enospc(first, &c.dir);
    let interrupted = appended.len();
    c.ack(&appended);
    c.say(format!(
        "FULL acked={} interrupted_batch_kept={interrupted} elapsed_ms={} error={msg}",
        c.acked,
        started.elapsed().as_millis()
    ));

    // 2. Further appends fail the same way; nothing poisons the log. Something may still
    // fit now and then (a spare segment the worker finished after the failed roll, room left
    // in the last block), so this runs until five failures in a row.
    let (mut ok_after, mut failures, mut in_a_row) = (0u64, 0u64, 0u32);
    while in_a_row < 5 {
        assert!(
            ok_after + failures < 10_000,
            "appends neither fail nor fill the disk"
        );
        match c.append(&log) {
            Ok(rs) => {
                c.ack(&rs);
                ok_after += 1;
                in_a_row = 0;
            }
            Err(e) => {
                let (rs, _) = expect_enospc(e, &c.dir);
                c.ack(&rs);
                failures += 1;
                in_a_row += 1;
            }
        }
    }
    log.flush()
        .expect("flush on a full disk (the records are in allocated blocks)");
    let cp = match log.checkpoint() {
        Ok(_) => "ok".to_string(),
        Err(e) => expect_enospc(e, &c.dir).1,
    };
    let report = log.verify().expect("verify on a full disk");
    assert!(
        report.ok,
        "verify on a full disk: {:?} {:?}",
        report.failure, report.warnings
    );
    assert_eq!(report.records, c.acked as u64, "records on a full disk");
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    // A segment whose zero fill failed is removed at once (only the writer makes them, under
    // its lock, so none can be in progress now); an index side file's temporary is reported
    // (a seal may still be writing one).
    assert!(
        !leftovers.iter().any(|n| n.ends_with(".seg.tmp")),
        "a failed segment creation left its file: {leftovers:?}"
    );
    c.say(format!(
        "AFTER ok={ok_after} failed={failures} checkpoint={cp} tmp_files={leftovers:?}"
    ));

    // 3. A restart on the still full disk.
    drop(log);
    let log = match Log::open(&dir, options(durability)) {
        Ok(log) => {
            c.say("REOPEN_FULL ok".into());
            match c.append(&log) {
                Ok(rs) => c.ack(&rs),
                Err(e) => {
                    let (rs, _) = expect_enospc(e, &c.dir);
                    c.ack(&rs);
                }
            }
            log
        }
        Err(e) => {
            let (_, msg) = expect_enospc(e, &c.dir);
            c.say(format!("REOPEN_FULL failed: {msg}"));
            // Freeing space must make the log openable again.
            std::fs::remove_file(&filler).unwrap();
            Log::open(&dir, options(durability)).expect("open once space is freed")
        }
    };

    // 4. Free space; the same process appends again.
    if filler.exists() {
        std::fs::remove_file(&filler).expect("delete the filler");
    }
    let before = c.acked;
    while c.acked - before < AFTER_FREE {
        match c.append(&log) {
            Ok(rs) => c.ack(&rs),
            Err(e) => panic!("append after space was freed: {e}"),
        }
    }
    log.flush().expect("flush after space was freed");
    log.checkpoint().expect("checkpoint after space was freed");
    c.say(format!("DONE acked={}", c.acked));
}

// ---------------------------------------------------------------------------------------
// Mounting.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tmpfs,
    Ext4,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tmpfs => "tmpfs",
            Kind::Ext4 => "ext4 loop image",
        }
    }
}

/// A small file system mounted for one case; unmounted when dropped, on panic too.
struct SmallFs {
    mount_point: PathBuf,
    mounted: bool,
    // Dropped after `drop` has unmounted: removes the mount point and the image.
    tmp: tempfile::TempDir,
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        if !self.mounted {
            return;
        }
        if run("umount", &[self.mount_point.as_os_str()]).is_err() {
            // Busy (a child still running after a failure): detach it lazily.
            if let Err(e) = run("umount", &["-l".as_ref(), self.mount_point.as_os_str()]) {
                eprintln!("could not unmount {}: {e}", self.mount_point.display());
            }
        }
    }
}

/// Runs a command; `Err` with its stderr (or why it could not start) unless it succeeded.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        // On one line: it ends up in a `skipped: ...` message.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr: Vec<&str> = stderr.split_whitespace().collect();
        Err(format!("{program} {}: {}", out.status, stderr.join(" ")))
    }
}

/// `mkfs.ext4`, looked up on `PATH` and in the sbin directories (not always on a user's path).
fn mkfs_ext4() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("mkfs.ext4"))
        .find(|p| p.is_file())
}

impl SmallFs {
    fn mount(kind: Kind) -> Result<SmallFs, String> {
        let tmp = tempfile::tempdir().map_err(|e| format!("temporary directory: {e}"))?;
        let mount_point = tmp.path().join("mnt");
        std::fs::create_dir(&mount_point).map_err(|e| format!("mount point: {e}"))?;
        let mut fs = SmallFs {
            mount_point,
            mounted: false,
            tmp,
        };
        let mnt = fs.mount_point.clone();
        match kind {
            Kind::Tmpfs => run(
                "mount",
                &[
                    "-t".as_ref(),
                    "tmpfs".as_ref(),
                    "-o".as_ref(),
                    "size=4m,mode=0700".as_ref(),
                    "tmpfs".as_ref(),
                    mnt.as_os_str(),
                ],
            )?,
            Kind::Ext4 => {
                let mkfs =
                    mkfs_ext4().ok_or("mkfs.ext4 not found; install e2fsprogs to run this case")?;
                let image = fs.tmp.path().join("fs.img");
                File::create(&image)
                    .and_then(|f| f.set_len(16 << 20))
                    .map_err(|e| format!("image file: {e}"))?;
                // No reserved blocks (the test runs as root, which could use them anyway),
                // and no lazy initialization writing in the background while we measure.
                run(
                    mkfs.to_str().unwrap(),
                    &[
                        "-q".as_ref(),
                        "-F".as_ref(),
                        "-m".as_ref(),
                        "0".as_ref(),
                        "-E".as_ref(),
                        "lazy_itable_init=0,lazy_journal_init=0,nodiscard".as_ref(),
                        image.as_os_str(),
                    ],
                )?;
                run(
                    "mount",
                    &[
                        "-t".as_ref(),
                        "ext4".as_ref(),
                        "-o".as_ref(),
                        "loop".as_ref(),
                        image.as_os_str(),
                        mnt.as_os_str(),
                    ],
                )?;
            }
        }
        fs.mounted = true;
        Ok(fs)
    }

    fn path(&self) -> &Path {
        &self.mount_point
    }
}

/// Bytes still free for a non-root user on the file system of `path` (the test's file
/// systems reserve nothing for root, so that is what the log can use).
fn free_bytes(path: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    assert_eq!(rc, 0, "statvfs {}", path.display());
    st.f_bavail as u64 * st.f_frsize as u64
}

/// Writes (real, allocated) zeros to `path` until about `room` bytes are left free.
fn fill_leaving(path: &Path, room: u64) -> u64 {
    let free = free_bytes(path.parent().unwrap());
    assert!(free > room + (1 << 20), "only {free} bytes free");
    let want = free - room;
    let mut f = File::create(path).unwrap();
    let chunk = vec![0u8; 64 << 10];
    let mut done = 0u64;
    while done < want {
        let n = chunk.len().min((want - done) as usize);
        f.write_all(&chunk[..n]).expect("write the filler");
        done += n as u64;
    }
    f.sync_all().unwrap();
    done
}

// ---------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------

struct ChildRun {
    acks: BTreeMap<u64, String>,
    notes: Vec<String>,
}

fn run_child(dir: &Path, filler: &Path, durability: &str, batch: usize) -> ChildRun {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "disk_full_child", "--nocapture", "--ignored"])
        .env(DIR_ENV, dir)
        .env(FILLER_ENV, filler)
        .env(DURABILITY_ENV, durability)
        .env(BATCH_ENV, batch.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning the child");
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines() {
            match line {
                Ok(l) => lines.push(l),
                Err(_) => break,
            }
        }
        lines
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not finish within {CHILD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    assert_eq!(
        status.signal(),
        None,
        "the child was killed by signal {:?} (7 is SIGBUS); its stderr:\n{stderr}",
        status.signal()
    );
    assert!(
        status.success(),
        "the child failed ({status}); its stderr:\n{stderr}"
    );
    let mut run = ChildRun {
        acks: BTreeMap::new(),
        notes: Vec::new(),
    };
    for line in lines {
        if let Some(rest) = line.strip_prefix("ACK ") {
            let (seq, hash) = rest.split_once(' ').expect("ACK seq hash");
            let seq: u64 = seq.parse().unwrap();
            assert!(
                run.acks.insert(seq, hash.to_string()).is_none(),
                "seq {seq} acknowledged twice"
            );
        } else if ["FULL", "AFTER", "REOPEN_FULL", "DONE"]
            .iter()
            .any(|p| line.starts_with(p))
        {
            run.notes.push(line);
        }
    }
    assert!(
        run.notes.iter().any(|n| n.starts_with("DONE")),
        "the child did not finish its scenario: {:?}\n{stderr}",
        run.notes
    );
    run
}

/// Every acknowledged event is in the log at its seq with its hash, and nothing else is.
fn check_reopened(dir: &Path, acks: &BTreeMap<u64, String>, ctx: &str) {
    let log = Log::open(dir, options(Durability::Sync))
        .unwrap_or_else(|e| panic!("{ctx}: reopen failed: {e}"));
    let mut found = BTreeMap::new();
    for r in log.iter() {
        let r = r.unwrap_or_else(|e| panic!("{ctx}: reading the reopened log: {e}"));
        found.insert(r.seq, hex(&r.hash));
    }
    for (seq, hash) in acks {
        assert_eq!(
            found.get(seq),
            Some(hash),
            "{ctx}: acknowledged seq {seq} lost or changed"
        );
    }
    assert_eq!(
        found.len(),
        acks.len(),
        "{ctx}: the log holds records that were never acknowledged"
    );
    let report = log.verify().unwrap();
    assert!(report.ok, "{ctx}: verify: {:?}", report.failure);
    assert_eq!(report.records, acks.len() as u64, "{ctx}");
    drop(log);
    let ro = Log::open_read_only(dir, HmacKey::from_bytes(KEY).unwrap()).unwrap();
    let report = ro.verify().unwrap();
    assert!(report.ok, "{ctx}: read-only verify: {:?}", report.failure);
    assert_eq!(report.records, acks.len() as u64, "{ctx}");
}

const CASES: &[(&str, usize)] = &[("sync", 1), ("sync", 16), ("buffered", 1), ("buffered", 16)];

fn full_disk_cases(kind: Kind) {
    for &(durability, batch) in CASES {
        let fs = match SmallFs::mount(kind) {
            Ok(fs) => fs,
            Err(reason) => {
                eprintln!("skipped: cannot mount {} ({reason})", kind.name());
                return;
            }
        };
        let ctx = format!(
            "{}, {durability}, {}",
            kind.name(),
            if batch == 1 {
                "single appends".to_string()
            } else {
                format!("batches of {batch}")
            }
        );
        let dir = fs.path().join("log");
        let filler = fs.path().join("filler");
        let filled = fill_leaving(&filler, ROOM);
        let run = run_child(&dir, &filler, durability, batch);
        check_reopened(&dir, &run.acks, &ctx);
        eprintln!(
            "disk_full [{ctx}]: filler {} KiB; {}",
            filled >> 10,
            run.notes.join("; ")
        );
        drop(fs);
    }
}

#[test]
fn tmpfs_full_disk() {
    full_disk_cases(Kind::Tmpfs);
}

#[test]
fn ext4_full_disk() {
    full_disk_cases(Kind::Ext4);
}
