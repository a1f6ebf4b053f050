//! `auditlog demo`: the main job on an embedded default.

use std::path::Path;
use std::time::Instant;

use auditlog::format::{decode_frame, HEADER_LEN};
use auditlog::sample::Generator;
use auditlog::{Durability, Error, HmacKey, Log, Options};

fn rate(n: u64, secs: f64) -> String {
    let r = n as f64 / secs.max(1e-9);
    if r >= 1e6 {
        format!("{:.2} M events/s", r / 1e6)
    } else {
        format!("{:.0} k events/s", r / 1e3)
    }
}

fn io<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |e| Error::io(op, p, e)
}

pub fn run(dir: &Path, events: u64, segment_bytes: Option<u64>) -> Result<i32, Error> {
    let events = events.max(1000);
    println!("auditlog demo");
    println!("  data directory : {} (recreated)", dir.display());
    println!("  key            : EPHEMERAL, generated for this run and never stored;");
    println!("                   real deployments set AUDIT_HMAC_KEY (>= 32 bytes)");
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io("removing old demo directory", dir))?;
    }
    let key = HmacKey::generate();
    let mut opts = Options::new(key.clone());
    if let Some(b) = segment_bytes {
        opts = opts.segment_bytes(b);
    }

    // 1. Bulk ingest from two threads, OS-buffered.
    let log = Log::open(dir, opts.clone().durability(Durability::Buffered))?;
    let per_thread = events / 2;
    // Events are generated in chunks outside the timed region, so the figure is the engine's.
    let secs = std::thread::scope(|s| -> Result<f64, Error> {
        let hs: Vec<_> = (0..2u64)
            .map(|i| {
                let log = log.clone();
                s.spawn(move || -> Result<f64, Error> {
                    let mut g = Generator::standard(i + 1);
                    let mut timed = 0f64;
                    let mut left = per_thread;
                    while left > 0 {
                        let chunk: Vec<_> = (&mut g).take(left.min(10_000) as usize).collect();
                        left -= chunk.len() as u64;
                        let t = Instant::now();
                        for e in &chunk {
                            log.append(e)?;
                        }
                        timed += t.elapsed().as_secs_f64();
                    }
                    Ok(timed)
                })
            })
            .collect();
        let mut worst = 0f64;
        for h in hs {
            worst = worst.max(h.join().expect("appender thread panicked")?);
        }
        Ok(worst)
    })?;
    println!("\n1. appended {} events (authentication, authorization, configuration, data access, security)", per_thread * 2);
    println!(
        "   Durability::Buffered, 2 threads      : {}",
        rate(per_thread * 2, secs)
    );
    drop(log);

    // 2. Reopen with Sync durability: every append durable before it returns.
    let t = Instant::now();
    let log = Log::open(dir, opts.clone().durability(Durability::Sync))?;
    let open_ms = t.elapsed().as_secs_f64() * 1e3;
    let sync_n = 64 * 400u64;
    let batches: Vec<Vec<_>> = (0..64u64)
        .map(|i| Generator::standard(100 + i).take(400).collect())
        .collect();
    let t = Instant::now();
    std::thread::scope(|s| -> Result<(), Error> {
        let hs: Vec<_> = batches
            .iter()
            .map(|batch| {
                let log = log.clone();
                s.spawn(move || -> Result<(), Error> {
                    for e in batch {
                        log.append(e)?;
                    }
                    Ok(())
                })
            })
            .collect();
        hs.into_iter()
            .try_for_each(|h| h.join().expect("appender thread panicked"))
    })?;
    let secs = t.elapsed().as_secs_f64();
    println!("   reopened in {open_ms:.1} ms (recovery scans only the active segment)");
    println!("   Durability::Sync, 64 threads          : {} (group commit, each acknowledged event durable)", rate(sync_n, secs));
    let cp = log.checkpoint()?;
    drop(log);
    println!(
        "   checkpoint to keep elsewhere: seq {} hash {}…",
        cp.seq,
        &cp.hash[..16]
    );

    // 3. Verify.
    let ro = Log::open_read_only(dir, key.clone())?;
    let t = Instant::now();
    let report = ro.verify_with(std::slice::from_ref(&cp))?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "\n2. verify: {} records in {} segments, chain and {} checkpoints: {}",
        report.records,
        report.segments,
        report.checkpoints_checked,
        if report.ok { "INTACT" } else { "FAILED" }
    );
    println!("   {} using all cores", rate(report.records, secs));
    if !report.ok {
        println!(
            "   unexpected failure: {}",
            report.failure.map(|f| f.to_string()).unwrap_or_default()
        );
        return Ok(1);
    }

    // 4. Tamper with a copy: change one record's payload and fix its CRC, as an attacker
    //    without the key would.
    let copy = dir.with_file_name(format!(
        "{}-tampered",
        dir.file_name()
            .map_or("demo".into(), |n| n.to_string_lossy())
    ));
    if copy.exists() {
        std::fs::remove_dir_all(&copy).map_err(io("removing", &copy))?;
    }
    std::fs::create_dir_all(&copy).map_err(io("creating", &copy))?;
    for entry in std::fs::read_dir(dir)
        .map_err(io("reading", dir))?
        .flatten()
    {
        if entry.file_name() != "LOCK" {
            std::fs::copy(entry.path(), copy.join(entry.file_name()))
                .map_err(io("copying", &entry.path()))?;
        }
    }
    let stats = ro.stats()?;
    let victim = copy.join(&stats.segment_files[0]);
    let mut bytes = std::fs::read(&victim).map_err(io("reading", &victim))?;
    let mut off = HEADER_LEN;
    let mut seq = 0;
    for _ in 0..1234 {
        let f = decode_frame(&bytes[off..]).map_err(|e| Error::Codec(e.to_string()))?;
        off += f.len;
        seq = f.seq + 1;
    }
    let f = decode_frame(&bytes[off..]).map_err(|e| Error::Codec(e.to_string()))?;
    let plen = f.payload.len();
    let payload_at = off + 28;
    let text = String::from_utf8_lossy(&bytes[payload_at..payload_at + plen]).to_string();
    let (what, pos) = match text.find("failed").or_else(|| text.find("blocked")) {
        Some(p) => ("status rewritten to look successful", p),
        None => ("one payload byte changed", 1),
    };
    bytes[payload_at + pos] ^= 0x20;
    let crc = crc32fast::hash(&bytes[off..off + 60 + plen]);
    bytes[off + 60 + plen..off + 64 + plen].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&victim, &bytes).map_err(io("writing", &victim))?;
    let tampered = Log::open_read_only(&copy, key)?.verify()?;
    println!(
        "\n3. tampered copy in {}: record {seq}, {what}, frame CRC recomputed",
        copy.display()
    );
    match tampered.failure {
        Some(fail) => println!("   verify: CAUGHT: {fail}"),
        None => {
            println!("   verify did not catch the tampering");
            return Ok(1);
        }
    }
    println!("\nThe demo key is gone with this process; see README.md for a log of your own.");
    Ok(0)
}
