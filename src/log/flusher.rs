//! Pipelined group commit for `Durability::Sync`: one flusher thread loops publish +
//! `fdatasync` while any appender waits, so the next group forms during the current sync, and
//! the waiters a sync covered are woken mostly by one another, not by the flusher: the next
//! sync starts while the previous group is still being woken (docs/PERFORMANCE.md).
//!
//! An appender registers `(seq, thread)` and parks until `durable > seq`. After each round
//! the flusher takes the waiters it covered off the list, unparks the first few and leaves
//! the rest to the first of them that runs, and starts the next round at once if anyone is left. A failed (or panicking) round
//! poisons the log; every waiter still on the list is woken and fails, the first of them with
//! the round's own error (or its panic), as a group-commit leader would have.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::{JoinHandle, Thread};

use parking_lot::{Condvar, Mutex};

use super::writer;
use super::Inner;
use crate::error::{Error, Result};

/// The first failure of a round, for the first waiter that finds it.
enum Failure {
    Error(Error),
    Panic(Box<dyn Any + Send>),
}

/// Covered waiters the flusher unparks itself; the first of them unparks the rest. Waking a
/// few delays the next round a little, so small groups grow (8 writers: 6.2 records per sync
/// instead of 4.7); waking all 64 would delay it by a whole herd (docs/PERFORMANCE.md).
const DIRECT_WAKES: usize = 8;

#[derive(Default)]
struct List {
    /// Appenders waiting for their record (`seq`) to be durable.
    waiting: Vec<(u64, Thread)>,
    /// The thread is running and serves `waiting`.
    running: bool,
    /// The flusher sleeps on `wake` (nobody waits).
    idle: bool,
    /// A round is under way: its outcome is not known yet.
    in_round: bool,
    stop: bool,
    failure: Option<Failure>,
    /// Covered waiters not yet woken: the first woken one unparks them.
    handoff: Vec<Thread>,
}

#[derive(Default)]
pub(crate) struct Flusher {
    list: Mutex<List>,
    wake: Condvar,
    join: Mutex<Option<JoinHandle<()>>>,
}

/// Starts the flusher of a `Durability::Sync` log.
pub(crate) fn start(inner: &Arc<Inner>) -> Result<()> {
    let f = &inner.sync.flusher;
    f.list.lock().running = true;
    let ctx = inner.clone();
    let join = std::thread::Builder::new()
        .name("auditlog-flusher".into())
        .spawn(move || run(&ctx))
        .map_err(|e| {
            f.list.lock().running = false;
            Error::io("starting flusher thread for", &inner.dir, e)
        })?;
    *f.join.lock() = Some(join);
    Ok(())
}

/// Stops the flusher once nobody waits; later syncs lead themselves (`writer::sync_to`).
pub(crate) fn stop(inner: &Inner) {
    let f = &inner.sync.flusher;
    f.list.lock().stop = true;
    f.wake.notify_one();
    if let Some(j) = f.join.lock().take() {
        if j.thread().id() != std::thread::current().id() {
            let _ = j.join();
        }
    }
}

/// Waits until record `seq` is durable, served by the flusher; `None` if no flusher runs.
pub(crate) fn wait(inner: &Inner, seq: u64) -> Option<Result<()>> {
    let f = &inner.sync.flusher;
    {
        let mut l = f.list.lock();
        if !l.running {
            return None;
        }
        l.waiting.push((seq, std::thread::current()));
        if l.idle {
            l.idle = false;
            f.wake.notify_one();
        }
    }
    loop {
        if inner.sync.durable.load(Ordering::Acquire) > seq {
            f.pass_on();
            return Some(Ok(()));
        }
        if inner.poison.check().is_err() {
            let mut l = f.list.lock();
            // The round that poisoned the log may still be storing its error: wait for it.
            if !l.in_round {
                let failure = l.failure.take();
                let handoff = std::mem::take(&mut l.handoff);
                drop(l);
                handoff.into_iter().for_each(|t| t.unpark());
                return Some(match failure {
                    Some(Failure::Error(e)) => Err(e),
                    Some(Failure::Panic(p)) => std::panic::resume_unwind(p),
                    None => inner.poison.check(),
                });
            }
        }
        std::thread::park();
    }
}

impl Flusher {
    /// Unparks the covered waiters the flusher left to the first of them.
    fn pass_on(&self) {
        let handoff = {
            let mut l = self.list.lock();
            if l.handoff.is_empty() {
                return;
            }
            std::mem::take(&mut l.handoff)
        };
        for t in handoff {
            t.unpark();
        }
    }
}

fn run(inner: &Inner) {
    let f = &inner.sync.flusher;
    loop {
        {
            let mut l = f.list.lock();
            while l.waiting.is_empty() {
                if l.stop {
                    l.running = false;
                    return;
                }
                l.idle = true;
                f.wake.wait(&mut l);
            }
            l.idle = false;
            l.in_round = true;
        }
        let outcome = if inner.poison.check().is_err() {
            Ok(Ok(()))
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer::flush_round(inner)))
        };
        let durable = inner.sync.durable.load(Ordering::Acquire);
        let failed = inner.poison.check().is_err();
        let mut covered = Vec::new();
        {
            let mut l = f.list.lock();
            l.in_round = false;
            let failure = match outcome {
                Ok(Err(Error::Poisoned(_))) | Ok(Ok(())) => None,
                Ok(Err(e)) => Some(Failure::Error(e)),
                Err(p) => Some(Failure::Panic(p)),
            };
            if let Some(failure) = failure {
                // A failed round without poison (it cannot be, but a waiter must never
                // wait on a log that cannot make progress).
                if !failed {
                    inner.poison.set(&Error::Poisoned(
                        "a group commit failed without poisoning the log".into(),
                    ));
                }
                if l.failure.is_none() {
                    l.failure = Some(failure);
                }
            }
            let failed = failed || l.failure.is_some();
            l.waiting.retain(|(seq, t)| {
                let done = failed || *seq < durable;
                if done {
                    covered.push(t.clone());
                }
                !done
            });
            let k = covered.len().min(DIRECT_WAKES);
            l.handoff.extend(covered.drain(k..));
        };
        for t in covered {
            t.unpark();
        }
    }
}
