//! Figures of docs/SINKS.md: events/s of each HTTP sink (Splunk HEC, Elasticsearch bulk,
//! Datadog logs, webhook) into loopback receivers, and the append rate while every sink runs
//! against the append rate with none.
//!
//! `cargo run --release --example sink_figures -- [events_per_sink] [append_events] [sync|interval] [rounds] [nice|normal]`
//! (defaults 20000, 100000, sync, 2, nice: the receivers run at the sinks' lowered
//! priority, standing for other machines; `normal` runs them at the appender's).
//!
//! The receivers run in this process (a thread per connection, keep-alive): HEC answers
//! `{"text":"Success","code":0}`, the bulk receiver one `create` item per action, Datadog
//! 202, the webhook 200; syslog goes over TCP (`confirm: true`) to a receiver that reads each
//! connection to its end; NATS to a `nats-server -js` started here when it is installed.
//! The append phase alternates idle and busy runs, `rounds` times: appends of 100 events
//! from one thread, then the same with every sink started at the log's end and following it.
#[path = "../tests/common/http_rx.rs"]
mod http_rx;

use std::io::Read;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlog::sample::Generator;
use auditlog::sink::{self, SinkConfig, SinkHandle};
use auditlog::{Durability, Event, HmacKey, Log, Options};
use http_rx::{HttpRequest, HttpRx};
use serde_json::{json, Value};

struct Receivers {
    hec: HttpRx,
    elastic: HttpRx,
    datadog: HttpRx,
    webhook: HttpRx,
    syslog: u16,
    nats: Option<(u16, Child)>,
}

fn receivers(tmp: &std::path::Path) -> Receivers {
    let hec = HttpRx::start(Arc::new(|_: &HttpRequest| {
        (200, r#"{"text":"Success","code":0}"#.to_string())
    }));
    let elastic = HttpRx::start(Arc::new(|r: &HttpRequest| {
        let n = r
            .body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            / 2;
        let items: Vec<Value> = (0..n)
            .map(|_| json!({"create": {"status": 201, "result": "created"}}))
            .collect();
        (
            200,
            json!({"took": 1, "errors": false, "items": items}).to_string(),
        )
    }));
    let datadog = HttpRx::start(Arc::new(|_: &HttpRequest| (202, "{}".to_string())));
    let webhook = HttpRx::start(Arc::new(|_: &HttpRequest| (200, String::new())));
    // Syslog over TCP: read each connection to its end, then close it (what `confirm`
    // waits for).
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let syslog = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 16];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let nats = nats_server(tmp);
    Receivers {
        hec,
        elastic,
        datadog,
        webhook,
        syslog,
        nats,
    }
}

fn nats_server(tmp: &std::path::Path) -> Option<(u16, Child)> {
    let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(tmp.join("js"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some((port, child))
}

/// The sink configs, named `<kind><suffix>`, starting at `start_at`.
fn configs(rx: &Receivers, suffix: &str, start_at: &str, http_only: bool) -> Vec<SinkConfig> {
    let mut d = vec![
        (
            "hec",
            json!({"type": "splunk_hec", "url": format!("{}/services/collector/event", rx.hec.base),
                   "token": "figures-token", "index": "audit"}),
        ),
        (
            "elastic",
            json!({"type": "elastic", "url": rx.elastic.base, "index": "audit"}),
        ),
        (
            "datadog",
            json!({"type": "datadog", "api_key": "figures-key", "url": format!("{}/api/v2/logs", rx.datadog.base)}),
        ),
        (
            "webhook",
            json!({"type": "webhook", "url": format!("{}/hook", rx.webhook.base),
                   "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        ),
    ];
    if !http_only {
        d.push((
            "syslog",
            json!({"type": "syslog", "protocol": "tcp", "address": format!("127.0.0.1:{}", rx.syslog)}),
        ));
        if let Some((port, _)) = &rx.nats {
            d.push((
                "nats",
                json!({"type": "nats", "url": format!("nats://127.0.0.1:{port}"),
                       "stream": format!("FIG{}", suffix.replace('-', "")),
                       "subject": format!("fig{}.{{event_type}}", suffix.replace('-', "")),
                       "create_stream": true}),
            ));
        }
    }
    d.into_iter()
        .map(|(k, dest)| {
            serde_json::from_value(json!({
                "name": format!("{k}{suffix}"),
                "destination": dest,
                "batch": {"max_events": 500, "flush_interval_ms": 100},
                "retry": {"initial_ms": 50, "max_ms": 1000},
                "start_at": start_at,
            }))
            .unwrap()
        })
        .collect()
}

fn start(log: &Log, c: SinkConfig) -> SinkHandle {
    let t = sink::transport_for(&c, &log.log_id()).unwrap();
    sink::spawn(log, c, t).unwrap()
}

fn append_all(log: &Log, evs: &[Event]) -> f64 {
    let t = Instant::now();
    for c in evs.chunks(100) {
        log.append_batch(c).unwrap();
    }
    evs.len() as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let per_sink: usize = args.get(1).map_or(20_000, |s| s.parse().unwrap());
    let appends: usize = args.get(2).map_or(100_000, |s| s.parse().unwrap());
    let durability = match args.get(3).map_or("sync", |s| s.as_str()) {
        "sync" => Durability::Sync,
        "interval" => Durability::Interval(Duration::from_millis(10)),
        o => panic!("durability {o:?}: sync or interval"),
    };
    let rounds: usize = args.get(4).map_or(2, |s| s.parse().unwrap());
    // The receivers stand for other machines: by default they run at the sinks' low
    // priority (`normal` runs them at the appender's).
    let nice_receivers = args.get(5).is_none_or(|s| s != "normal");
    let key = HmacKey::from_bytes(&[7; 32]).unwrap();
    let base = std::env::var("PROBE_DIR").unwrap_or_else(|_| "target".into());
    let tmp = tempfile::tempdir_in(base).unwrap();
    let path = tmp.path().to_path_buf();
    let mut rx = std::thread::spawn(move || {
        // Threads and processes started from here inherit the lowered priority.
        if nice_receivers {
            sink::lower_thread_priority();
        }
        receivers(&path)
    })
    .join()
    .unwrap();

    // Events/s of each HTTP sink from a log already holding `per_sink` events.
    let log = Log::open(tmp.path().join("a"), Options::new(key.clone())).unwrap();
    let evs: Vec<Event> = Generator::standard(1).take(per_sink).collect();
    log.append_batch(&evs).unwrap();
    println!("| destination | events/s |\n| --- | --- |");
    for c in configs(&rx, "", "beginning", true) {
        let name = c.name.clone();
        let t = Instant::now();
        let h = start(&log, c);
        assert!(
            h.wait_acked(per_sink as u64 - 1, Duration::from_secs(600)),
            "{name}: {:?}",
            h.status()
        );
        let rate = per_sink as f64 / t.elapsed().as_secs_f64();
        h.stop();
        println!("| {name} | {rate:.0} |");
    }
    drop(log);

    // The append rate with every sink following the log, against none.
    let log = Log::open(
        tmp.path().join("b"),
        Options::new(key.clone()).durability(durability),
    )
    .unwrap();
    let mut gen = Generator::standard(2);
    let (mut idle, mut busy) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let evs: Vec<Event> = gen.by_ref().take(appends).collect();
        idle.push(append_all(&log, &evs));
        let sinks: Vec<SinkHandle> = configs(&rx, &format!("-r{round}"), "end", false)
            .into_iter()
            .map(|c| start(&log, c))
            .collect();
        // Let every sink connect (and the NATS one create its stream) before timing.
        std::thread::sleep(Duration::from_millis(500));
        let evs: Vec<Event> = gen.by_ref().take(appends).collect();
        busy.push(append_all(&log, &evs));
        let last = log.next_seq() - 1;
        let lags: Vec<String> = sinks
            .iter()
            .map(|h| format!("{} {}", h.name(), h.status().lag))
            .collect();
        let t = Instant::now();
        for h in &sinks {
            assert!(
                h.wait_acked(last, Duration::from_secs(600)),
                "{:?}",
                h.status()
            );
        }
        println!(
            "round {round}: idle {:.0}/s, every sink running {:.0}/s ({:.1}%); lag at the end \
             of the appends: {}; drained {:.2} s later",
            idle[round],
            busy[round],
            100.0 * busy[round] / idle[round],
            lags.join(", "),
            t.elapsed().as_secs_f64()
        );
        for h in sinks {
            h.stop();
        }
    }
    let (i, b): (f64, f64) = (idle.iter().sum(), busy.iter().sum());
    println!(
        "append rate ({appends} events per run, {rounds} rounds, {:?}, receivers {}): idle \
         {:.0}/s, every sink running {:.0}/s: {:.1}% of idle{}",
        durability,
        if nice_receivers {
            "niced"
        } else {
            "at normal priority"
        },
        i / rounds as f64,
        b / rounds as f64,
        100.0 * b / i,
        if rx.nats.is_none() {
            " (nats-server not installed: no NATS sink)"
        } else {
            ""
        }
    );
    if let Some((_, c)) = rx.nats.as_mut() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
