//! A sink's durable cursor: the last acknowledged seq and its counters, one small JSON file
//! replaced atomically (write a temporary file, sync it, rename it over, sync the directory).

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsio;

/// The directory of cursor files inside a data directory.
pub const CURSOR_DIR: &str = "sinks";

/// What a cursor file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorState {
    pub sink: String,
    /// Every record up to this seq was delivered or filtered out.
    pub acked_seq: Option<u64>,
    pub delivered: u64,
    pub retried: u64,
    pub filtered: u64,
    /// Why the sink parked, if it did (it resumes when restarted).
    pub parked: Option<String>,
    pub last_error: Option<String>,
}

pub(crate) fn read(path: &Path) -> Result<Option<CursorState>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading sink cursor", path, e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            file: path.to_path_buf(),
            offset: e.column() as u64,
            detail: format!("sink cursor file does not parse: {e}"),
        })
}

pub(crate) fn write(path: &Path, c: &CursorState) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fsio::create_dir_all("sink.cursor.mkdir", dir)
        .map_err(|e| Error::io("creating sink cursor directory", dir, e))?;
    let tmp = path.with_extension("cursor.tmp");
    let body = serde_json::to_vec_pretty(c).expect("a cursor serializes");
    let mut f = fsio::create_truncate("sink.cursor.create", &tmp)
        .map_err(|e| Error::io("creating", &tmp, e))?;
    f.write_all(&body)
        .map_err(|e| Error::io("writing", &tmp, e))?;
    fsio::sync_all("sink.cursor.sync", &f).map_err(|e| Error::io("syncing", &tmp, e))?;
    drop(f);
    fsio::rename("sink.cursor.rename", &tmp, path)
        .map_err(|e| Error::io("renaming sink cursor into place", path, e))?;
    fsio::sync_dir("sink.cursor.syncdir", dir).map_err(|e| Error::io("syncing", dir, e))
}
