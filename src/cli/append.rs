//! `auditlog append`: JSON Lines in, records (and receipts) out.
//!
//! Two stages run side by side: a reader thread reads the input and splits it into batches
//! of lines (trimmed, blank lines skipped, each with its line number), and the calling thread
//! appends each batch with `append_json_batch` (which parses, checks and encodes the lines on
//! the machine's cores, then writes them in order) and prints its receipts. So reading and
//! splitting the next batch overlaps with appending this one.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;

use auditlog::{Error, Log};

/// Lines in a full batch. A batch is also sent as soon as the input has nothing more
/// buffered, so that lines from a slow producer (a pipe) are appended without waiting for
/// 4,096 of them.
const BATCH_LINES: usize = 4096;

/// Batches read ahead of the one being appended.
const READ_AHEAD: usize = 2;

/// Lines read from the input: their bytes back to back, and `spans` of
/// `(start, end, line number)` into them.
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    spans: Vec<(usize, usize, u64)>,
}

/// What the reader sends: a batch, or the read error that ended the input (after the batch
/// of the lines before it).
type Received = Result<Batch, Error>;

/// Reads `input` to its end as batches of non-blank lines, sent to `tx`. Stops early when
/// the receiver is gone (the append failed).
fn read_batches(input: Box<dyn Read + Send>, tx: mpsc::SyncSender<Received>) {
    let mut reader = BufReader::with_capacity(1 << 20, input);
    let mut batch = Batch {
        text: Vec::with_capacity(2 << 20),
        spans: Vec::with_capacity(BATCH_LINES),
    };
    let mut line_no = 0u64;
    loop {
        let start = batch.text.len();
        match reader.read_until(b'\n', &mut batch.text) {
            Ok(0) => {
                if !batch.spans.is_empty() {
                    let _ = tx.send(Ok(batch));
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                batch.text.truncate(start);
                if !batch.spans.is_empty() && tx.send(Ok(batch)).is_err() {
                    return;
                }
                let _ = tx.send(Err(Error::BadLine {
                    line: line_no + 1,
                    message: format!("cannot read input: {e}"),
                }));
                return;
            }
        }
        line_no += 1;
        let line = &batch.text[start..];
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() {
            batch.text.truncate(start);
        } else {
            let a = start + (trimmed.as_ptr() as usize - line.as_ptr() as usize);
            batch.spans.push((a, a + trimmed.len(), line_no));
        }
        if batch.spans.len() >= BATCH_LINES
            || (reader.buffer().is_empty() && !batch.spans.is_empty())
        {
            let next = Batch {
                text: Vec::with_capacity(batch.text.capacity()),
                spans: Vec::with_capacity(BATCH_LINES),
            };
            if tx.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                return;
            }
        }
    }
}

/// Appends batches of JSON lines and prints receipts once each batch has returned (that is,
/// once they are durable under the log's durability).
struct Appender<'a, W: Write> {
    log: &'a Log,
    out: W,
    receipts: bool,
    appended: u64,
}

impl<W: Write> Appender<'_, W> {
    fn append(&mut self, batch: &Batch) -> Result<(), Error> {
        let lines: Vec<&[u8]> = batch
            .spans
            .iter()
            .map(|&(a, b, _)| &batch.text[a..b])
            .collect();
        match self.log.append_json_batch(&lines) {
            Ok(rs) => self.emit(&rs),
            // A batch is checked before anything is written: append the lines before the bad
            // one, so they stay appended, and report it with its line number in the input.
            Err(Error::BadLine { line, message }) => {
                let bad = line as usize - 1;
                let rs = self.log.append_json_batch(&lines[..bad])?;
                self.emit(&rs)?;
                Err(Error::BadLine {
                    line: batch.spans[bad].2,
                    message,
                })
            }
            Err(e) => Err(e),
        }
    }

    fn emit(&mut self, rs: &[auditlog::Receipt]) -> Result<(), Error> {
        self.appended += rs.len() as u64;
        if self.receipts {
            let w = |e: std::io::Error| Error::io("writing receipts to", "stdout", e);
            for r in rs {
                // event_id is the caller's string: JSON-escaped by serde_json.
                let id = serde_json::to_string(&r.event_id).expect("a string serializes");
                writeln!(
                    self.out,
                    "{{\"seq\":{},\"event_id\":{id},\"hash\":\"{}\"}}",
                    r.seq,
                    r.hash_string()
                )
                .map_err(w)?;
            }
            self.out.flush().map_err(w)?;
        }
        Ok(())
    }
}

/// Reads JSON Lines from `input` and appends them; exit code 0 once all are appended.
pub(super) fn run(log: &Log, input: Box<dyn Read + Send>, receipts: bool) -> Result<i32, Error> {
    let (tx, rx) = mpsc::sync_channel::<Received>(READ_AHEAD);
    // Not joined on an error: the reader may be waiting on a pipe, and the process exits.
    let reader = std::thread::Builder::new()
        .name("append-reader".into())
        .spawn(move || read_batches(input, tx))
        .map_err(|e| Error::io("starting the input reader", "stdin", e))?;
    let stdout = std::io::stdout();
    let mut app = Appender {
        log,
        out: std::io::BufWriter::new(stdout.lock()),
        receipts,
        appended: 0,
    };
    let result = rx.iter().try_for_each(|r| app.append(&r?));
    drop(rx);
    if result.is_ok() {
        // The channel closed: the reader has returned.
        let _ = reader.join();
    }
    eprintln!("appended {} events", app.appended);
    result.map(|_| 0)
}
