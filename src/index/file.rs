//! The index side file `NNNNNNNNNNNNNNNNNNNN.idx` of a sealed segment (see docs/FORMAT.md):
//!
//! ```text
//! 0  magic "ALIDX\0\0\x01" | 8 version u16 | 10 flags u16 | 12 reserved u32
//! 16 first_seq u64 | 24 count u64 | 32 records_end u64 | 40 last_mac[32]
//! 72 min_ts i64 | 80 max_ts i64
//! 88 offsets: count x u32 | ts: count x i64 | time: count x (i64 ts, u32 ordinal)
//!    then per field (9, in `Field` order): n_terms u32, then per term in byte order:
//!    term_len u32, term bytes, n_postings u32, postings (u32 ordinals, ascending)
//! end-4 crc32 of every byte before it
//! ```
//!
//! Version 2 (the one written) ends with `mac[32] | crc32`, where
//! `mac = HMAC-SHA256(K, "auditlog/index/v2" || log_id || every byte before the mac)`: only the
//! key holder can write an index that is used. `first_seq`, `count`, `records_end` and
//! `last_mac` (the footer's, itself chained) tie the file to the one segment state it indexes:
//! a file that disagrees with its segment's footer is stale, one whose MAC fails is forged, and
//! a version-1 file (no MAC) is unauthenticated; each is reported and rebuilt, never used.

use super::{SegIndex, FIELDS};
use crate::chain::Hash;

/// Extension of index side files.
pub const INDEX_EXT: &str = "idx";
const MAGIC: &[u8; 8] = b"ALIDX\0\0\x01";
const VERSION: u16 = 2;
const MAC_LEN: usize = 32;
const FIXED: usize = 88;

/// Why an index file was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexFileError {
    /// Checksum, magic or structure is wrong.
    Damaged(String),
    /// The file is intact but describes another state of the segment.
    Stale,
    /// The MAC does not verify with this log's key: the file was edited or made elsewhere.
    Forged,
    /// A version-1 file, written before index files carried a MAC.
    Unauthenticated,
}

impl std::fmt::Display for IndexFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexFileError::Damaged(m) => write!(f, "damaged index file: {m}"),
            IndexFileError::Stale => f.write_str("index file does not match its segment"),
            IndexFileError::Forged => {
                f.write_str("index file MAC does not verify with this log's key (forged or edited)")
            }
            IndexFileError::Unauthenticated => {
                f.write_str("index file is version 1, without a MAC")
            }
        }
    }
}

/// The key and log an index file is authenticated for.
#[derive(Clone, Copy)]
pub struct IndexAuth<'a> {
    pub chain: &'a crate::chain::Chain,
    pub log_id: &'a [u8; 16],
}

impl IndexAuth<'_> {
    fn mac(&self, body: &[u8]) -> Hash {
        self.chain
            .sign(b"auditlog/index/v2", &[self.log_id.as_slice(), body])
    }
}

/// Encodes `idx` for a segment whose records end at `records_end` with last MAC `last_mac`.
pub(crate) fn encode(
    idx: &SegIndex,
    records_end: u64,
    last_mac: &Hash,
    auth: IndexAuth<'_>,
) -> Vec<u8> {
    let mut b = Vec::new();
    encode_into(&mut b, idx, records_end, last_mac, auth);
    b
}

/// [`encode`] into `b` (cleared first): a buffer kept from an earlier segment's index file
/// has its memory faulted in already.
pub(crate) fn encode_into(
    b: &mut Vec<u8>,
    idx: &SegIndex,
    records_end: u64,
    last_mac: &Hash,
    auth: IndexAuth<'_>,
) {
    let n = idx.len();
    b.clear();
    b.reserve(FIXED + n * 60 + 4);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.extend_from_slice(&[0u8; 6]);
    b.extend_from_slice(&idx.first_seq.to_le_bytes());
    b.extend_from_slice(&(n as u64).to_le_bytes());
    b.extend_from_slice(&records_end.to_le_bytes());
    b.extend_from_slice(last_mac);
    b.extend_from_slice(&idx.min_ts.to_le_bytes());
    b.extend_from_slice(&idx.max_ts.to_le_bytes());
    for o in &idx.offsets {
        b.extend_from_slice(&o.to_le_bytes());
    }
    for t in &idx.ts {
        b.extend_from_slice(&t.to_le_bytes());
    }
    for (t, o) in &idx.time {
        b.extend_from_slice(&t.to_le_bytes());
        b.extend_from_slice(&o.to_le_bytes());
    }
    for field in &idx.terms {
        let mut terms: Vec<(&super::Term, &Vec<u32>)> = field.iter().collect();
        terms.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        b.extend_from_slice(&(terms.len() as u32).to_le_bytes());
        for (term, posts) in terms {
            b.extend_from_slice(&(term.as_bytes().len() as u32).to_le_bytes());
            b.extend_from_slice(term.as_bytes());
            b.extend_from_slice(&(posts.len() as u32).to_le_bytes());
            for p in posts {
                b.extend_from_slice(&p.to_le_bytes());
            }
        }
    }
    let mac = auth.mac(b);
    b.extend_from_slice(&mac);
    let crc = crc32fast::hash(b);
    b.extend_from_slice(&crc.to_le_bytes());
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexFileError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len());
        let end =
            end.ok_or_else(|| IndexFileError::Damaged(format!("truncated at byte {}", self.at)))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    /// `n` items of `N` bytes each, decoded by `f`, into a vector sized once (collecting
    /// `Result`s one by one loses the size and grows the vector by doubling: a third of
    /// loading an index).
    fn array<T, const N: usize>(
        &mut self,
        n: usize,
        f: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, IndexFileError> {
        let len = n
            .checked_mul(N)
            .ok_or_else(|| IndexFileError::Damaged("count too large".into()))?;
        Ok(self
            .take(len)?
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("N bytes")))
            .collect())
    }
    fn u32(&mut self) -> Result<u32, IndexFileError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, IndexFileError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, IndexFileError> {
        Ok(self.u64()? as i64)
    }
}

/// Checks an index file's checksum, version and MAC, and that it describes the segment state
/// given (its footer's first seq, count, records end and last MAC), without decoding its
/// body; returns the authenticated bytes before the MAC and the record count.
pub(crate) fn authenticate<'b>(
    bytes: &'b [u8],
    first_seq: u64,
    count: u64,
    records_end: u64,
    last_mac: &Hash,
    auth: IndexAuth<'_>,
) -> Result<(&'b [u8], u64), IndexFileError> {
    let damaged = |m: &str| IndexFileError::Damaged(m.to_string());
    if bytes.len() < FIXED + 4 || &bytes[..8] != MAGIC {
        return Err(damaged("bad magic"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body) != u32::from_le_bytes(crc.try_into().expect("4 bytes")) {
        return Err(damaged("checksum mismatch"));
    }
    let version = u16::from_le_bytes(body[8..10].try_into().expect("2 bytes"));
    match version {
        1 => return Err(IndexFileError::Unauthenticated),
        VERSION => {}
        v => return Err(damaged(&format!("unsupported index version {v}"))),
    }
    if body.len() < FIXED + MAC_LEN {
        return Err(damaged("too short for its MAC"));
    }
    let (body, mac) = body.split_at(body.len() - MAC_LEN);
    if !crate::chain::ct_eq(&auth.mac(body), mac.try_into().expect("32 bytes")) {
        return Err(IndexFileError::Forged);
    }
    let mut r = Reader { b: body, at: 10 };
    r.take(6)?;
    let f_first = r.u64()?;
    let n = r.u64()?;
    let f_end = r.u64()?;
    let f_mac: Hash = r.take(32)?.try_into().expect("32 bytes");
    if f_first != first_seq || n != count || f_end != records_end || &f_mac != last_mac {
        return Err(IndexFileError::Stale);
    }
    Ok((body, n))
}

/// Decodes an index file and checks it against the segment it must describe.
pub(crate) fn decode(
    bytes: &[u8],
    first_seq: u64,
    count: u64,
    records_end: u64,
    last_mac: &Hash,
    auth: IndexAuth<'_>,
) -> Result<SegIndex, IndexFileError> {
    let damaged = |m: &str| IndexFileError::Damaged(m.to_string());
    let (body, n) = authenticate(bytes, first_seq, count, records_end, last_mac, auth)?;
    let mut r = Reader { b: body, at: 72 };
    let n = usize::try_from(n).map_err(|_| damaged("count too large"))?;
    if n.checked_mul(24).is_none_or(|need| need > body.len()) {
        return Err(damaged("count larger than the file"));
    }
    let mut idx = SegIndex::new(first_seq);
    idx.min_ts = r.i64()?;
    idx.max_ts = r.i64()?;
    idx.offsets = r.array(n, u32::from_le_bytes)?;
    idx.ts = r.array(n, i64::from_le_bytes)?;
    idx.ts_ascending = idx.ts.windows(2).all(|w| w[0] <= w[1]);
    idx.time = r.array(n, |e: [u8; 12]| {
        let (t, o) = e.split_at(8);
        (
            i64::from_le_bytes(t.try_into().expect("8 bytes")),
            u32::from_le_bytes(o.try_into().expect("4 bytes")),
        )
    })?;
    if idx.time.windows(2).any(|w| w[0] > w[1]) || idx.time.iter().any(|&(_, o)| o as usize >= n) {
        return Err(damaged("time index out of order"));
    }
    for field in 0..FIELDS {
        let terms = r.u32()? as usize;
        let mut map = super::TermMap::with_capacity_and_hasher(terms.min(n + 1), super::TermState);
        for _ in 0..terms {
            let len = r.u32()? as usize;
            let term =
                std::str::from_utf8(r.take(len)?).map_err(|_| damaged("term is not UTF-8"))?;
            let posts = r.u32()? as usize;
            if posts > n {
                return Err(damaged("posting list longer than the segment"));
            }
            let list = r.array(posts, u32::from_le_bytes)?;
            if list.iter().any(|&o| o as usize >= n) || list.windows(2).any(|w| w[0] >= w[1]) {
                return Err(damaged("posting list out of range or order"));
            }
            map.insert(super::Term::new(term), list);
        }
        idx.terms[field] = map;
    }
    if r.at != body.len() {
        return Err(damaged("trailing bytes"));
    }
    idx.rebuild_codes();
    Ok(idx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Generator;

    #[test]
    fn roundtrip_stale_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::HmacKey::from_bytes(&[1; 32]).unwrap();
        let log = crate::Log::open(
            dir.path(),
            crate::Options::new(key).durability(crate::Durability::Buffered),
        )
        .unwrap();
        for e in Generator::standard(3).take(200) {
            log.append(&e).unwrap();
        }
        let seg = log.inner_segments()[0].clone();
        let idx = super::super::build(seg.bytes(), 0).unwrap();
        assert_eq!(idx.len(), 200);
        let mac = [5u8; 32];
        let chain = crate::Chain::new(&crate::HmacKey::from_bytes(&[1; 32]).unwrap());
        let log_id = [9u8; 16];
        let auth = IndexAuth {
            chain: &chain,
            log_id: &log_id,
        };
        let bytes = encode(&idx, 1234, &mac, auth);
        assert_eq!(decode(&bytes, 0, 200, 1234, &mac, auth).unwrap(), idx);
        assert_eq!(
            decode(&bytes, 0, 200, 1235, &mac, auth),
            Err(IndexFileError::Stale)
        );
        for i in (0..bytes.len()).step_by(7) {
            let mut c = bytes.clone();
            c[i] ^= 0x10;
            assert!(decode(&c, 0, 200, 1234, &mac, auth).is_err(), "flip at {i}");
        }
        assert!(decode(&bytes[..bytes.len() - 1], 0, 200, 1234, &mac, auth).is_err());
        // An edit with its CRC recomputed (what an attacker without the key can do) is
        // caught by the MAC; so is a file made with another key or for another log.
        let mut forged = bytes.clone();
        let n = forged.len();
        forged[FIXED] ^= 1;
        let crc = crc32fast::hash(&forged[..n - 4]);
        forged[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&forged, 0, 200, 1234, &mac, auth),
            Err(IndexFileError::Forged)
        );
        let other = crate::Chain::new(&crate::HmacKey::from_bytes(&[2; 32]).unwrap());
        let foreign = encode(
            &idx,
            1234,
            &mac,
            IndexAuth {
                chain: &other,
                log_id: &log_id,
            },
        );
        assert_eq!(
            decode(&foreign, 0, 200, 1234, &mac, auth),
            Err(IndexFileError::Forged)
        );
        // A version-1 file (no MAC) is never used.
        let mut v1 = bytes[..n - 4 - MAC_LEN].to_vec();
        v1[8..10].copy_from_slice(&1u16.to_le_bytes());
        let crc = crc32fast::hash(&v1);
        v1.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode(&v1, 0, 200, 1234, &mac, auth),
            Err(IndexFileError::Unauthenticated)
        );
    }
}
