//! Fault injection for tests (feature `failpoints`): make the Nth sync or segment creation
//! fail with an I/O error, as a failing disk or a full disk would.

use std::sync::atomic::{AtomicU64, Ordering};

static SYNC: AtomicU64 = AtomicU64::new(0);
static CREATE: AtomicU64 = AtomicU64::new(0);

/// Where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// `fdatasync`/`msync` of the active segment on the append path.
    Sync,
    /// Creating and preallocating a segment file (reported as "no space left on device").
    CreateSegment,
}

fn slot(p: Point) -> &'static AtomicU64 {
    match p {
        Point::Sync => &SYNC,
        Point::CreateSegment => &CREATE,
    }
}

/// From the `n`th time (1-based) `p` is reached on, it fails, until disarmed with 0.
pub fn fail_nth(p: Point, n: u64) {
    slot(p).store(n, Ordering::SeqCst);
}

/// Called at the point: returns an error when the countdown reaches it.
pub(crate) fn hit(p: Point) -> std::io::Result<()> {
    let s = slot(p);
    let mut cur = s.load(Ordering::SeqCst);
    loop {
        match cur {
            0 => return Ok(()),
            1 => {
                return Err(match p {
                    Point::Sync => std::io::Error::other("injected sync failure"),
                    Point::CreateSegment => std::io::Error::from_raw_os_error(28),
                })
            }
            _ => match s.compare_exchange(cur, cur - 1, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            },
        }
    }
}
