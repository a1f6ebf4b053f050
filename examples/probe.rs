use auditlog::{sample::Generator, Durability, HmacKey, Log, Options, WritePath};
use std::time::Instant;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads: u64 = args[1].parse().unwrap();
    let per: u64 = args[2].parse().unwrap();
    let path = match args[3].as_str() {
        "mmap" => WritePath::Mmap,
        _ => WritePath::Pwrite,
    };
    let dur = match args.get(4).map(|s| s.as_str()) {
        Some("buffered") => Durability::Buffered,
        _ => Durability::Sync,
    };
    let dir = tempfile::tempdir_in(".").unwrap();
    let log = Log::open(
        dir.path(),
        Options::new(HmacKey::from_bytes(&[7; 32]).unwrap())
            .durability(dur)
            .write_path(path),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let evs: Vec<Vec<_>> = (0..threads)
        .map(|i| Generator::standard(i).take(per as usize).collect())
        .collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        for ev in &evs {
            let log = log.clone();
            s.spawn(move || {
                for e in ev {
                    log.append(e).unwrap();
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{threads} threads {:?} {:?}: {:.0} ev/s",
        path,
        dur,
        (threads * per) as f64 / secs
    );
}
