//! Rewriting a sealed segment: dropping an expired prefix (compaction) or replacing payloads
//! (redaction). Frames are copied in order with their seq, timestamp and MAC unchanged; the
//! new file is written under a temporary name, synced and renamed into place, so a crash
//! leaves either the old segment or the new one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{
    encode_frame_into, frame_len, Footer, SegmentHeader, FORMAT_VERSION, FRAME_FLAG_REDACTED,
};
use crate::fsio;
use crate::log::Inner;
use crate::segment::{segment_name, sync_dir, Segment};

/// Removes a segment file and its index side file.
pub(crate) fn remove_segment_files(point: &'static str, path: &Path) -> Result<()> {
    fsio::remove_if_exists(point, path).map_err(|e| Error::io("removing segment", path, e))?;
    let idx = path.with_extension(crate::index::INDEX_EXT);
    fsio::remove_if_exists(point, &idx).map_err(|e| Error::io("removing index", &idx, e))
}

/// Writes a new version of sealed `seg` without its first `skip` records and with the
/// payloads in `replace` (by seq, marked redacted), and returns it as a sealed segment.
pub(crate) fn rewrite(
    inner: &Inner,
    seg: &Segment,
    skip: usize,
    replace: &HashMap<u64, Vec<u8>>,
) -> Result<Arc<Segment>> {
    if seg.footer.is_none() {
        return Err(Error::Corrupt {
            file: seg.path.clone(),
            offset: 0,
            detail: "only sealed segments are rewritten".into(),
        });
    }
    let frames: Vec<_> = seg.frames().map(|(_, f)| f).collect();
    if seg.footer.is_some_and(|ft| ft.count != frames.len() as u64) {
        return Err(Error::Corrupt {
            file: seg.path.clone(),
            offset: 0,
            detail: "the segment is damaged (fewer readable records than its footer counts); run `auditlog verify`; it is not rewritten".into(),
        });
    }
    let kept = frames
        .get(skip..)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::Corrupt {
            file: seg.path.clone(),
            offset: 0,
            detail: format!(
                "cannot drop {skip} of {} records and keep a segment",
                frames.len()
            ),
        })?;
    let (first_seq, prev_hash) = match skip {
        0 => (seg.header.first_seq, seg.header.prev_hash),
        _ => (kept[0].seq, frames[skip - 1].mac),
    };
    let header = SegmentHeader {
        version: FORMAT_VERSION,
        flags: 0,
        log_id: inner.log_id,
        first_seq,
        created_ns: seg.header.created_ns,
        prev_hash,
    };
    // A forward-secure segment stays one (version 3, its flag).
    let header = crate::fss::keep_marking(&seg.header, header);
    let mut buf = header.encode().to_vec();
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    for f in kept {
        let (flags, payload) = match replace.get(&f.seq) {
            Some(p) => (f.flags | FRAME_FLAG_REDACTED, p.as_slice()),
            None => (f.flags, f.payload),
        };
        let at = buf.len();
        buf.resize(at + frame_len(payload.len()), 0);
        encode_frame_into(&mut buf[at..], flags, f.seq, f.ts, payload, &f.mac);
        min_ts = min_ts.min(f.ts);
        max_ts = max_ts.max(f.ts);
    }
    let last = kept.last().expect("non-empty");
    let footer = Footer {
        count: kept.len() as u64,
        first_seq,
        last_seq: last.seq,
        min_ts,
        max_ts,
        last_mac: last.mac,
        records_end: buf.len() as u64,
        sealed_ns: crate::event::now_nanos(),
    };
    buf.extend_from_slice(&footer.encode());

    let name = segment_name(first_seq);
    let path = inner.dir.join(&name);
    let tmp = inner.dir.join(format!("{name}.tmp"));
    let file = (|| -> std::io::Result<std::fs::File> {
        let f = fsio::create_truncate("compaction.write", &tmp)?;
        fsio::write_at("compaction.write", &f, &buf, 0)?;
        fsio::sync_all("compaction.write", &f)?;
        Ok(f)
    })()
    .map_err(|e| {
        let _ = fsio::remove("compaction.write", &tmp);
        Error::io("writing rewritten segment", &tmp, e)
    })?;
    // The old index no longer matches; it is rebuilt (and rewritten) on first use.
    let _ = fsio::remove_if_exists(
        "compaction.swap",
        &path.with_extension(crate::index::INDEX_EXT),
    );
    fsio::rename("compaction.swap", &tmp, &path)
        .map_err(|e| Error::io("installing rewritten segment", &path, e))?;
    if path != seg.path {
        remove_segment_files("compaction.swap", &seg.path)?;
    }
    sync_dir(&inner.dir)?;
    Segment::sealed(path, &file, header, footer)
}
