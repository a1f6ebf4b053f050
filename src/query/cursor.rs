//! The opaque page cursor: the `(timestamp, seq)` of the last event returned, the snapshot the
//! first page saw, the page number and the query's fingerprint, signed with the log's key so
//! that a forged or altered cursor is refused.
//!
//! `c1` + hex( ts i64 | seq u64 | snapshot u64 | page u32 | fingerprint[8] | mac[16] ).

use crate::chain::{ct_eq, hex, Chain};
use crate::error::{Error, Result};

const PREFIX: &str = "c1";
const BODY: usize = 8 + 8 + 8 + 4 + 8;
const MAC: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub ts: i64,
    pub seq: u64,
    /// Events with `seq >= snapshot` are not part of this paging session.
    pub snapshot: u64,
    /// Pages already returned.
    pub page: u32,
}

fn bad(message: &str) -> Error {
    Error::InvalidQuery {
        param: "cursor".into(),
        message: message.into(),
    }
}

fn mac(chain: &Chain, log_id: &[u8; 16], body: &[u8]) -> [u8; MAC] {
    let full = chain.sign(b"auditlog/cursor/v1", &[log_id, body]);
    let mut out = [0u8; MAC];
    out.copy_from_slice(&full[..MAC]);
    out
}

impl Cursor {
    pub fn encode(&self, chain: &Chain, log_id: &[u8; 16], fingerprint: &[u8; 8]) -> String {
        let mut b = Vec::with_capacity(BODY + MAC);
        b.extend_from_slice(&self.ts.to_le_bytes());
        b.extend_from_slice(&self.seq.to_le_bytes());
        b.extend_from_slice(&self.snapshot.to_le_bytes());
        b.extend_from_slice(&self.page.to_le_bytes());
        b.extend_from_slice(fingerprint);
        let m = mac(chain, log_id, &b);
        b.extend_from_slice(&m);
        format!("{PREFIX}{}", hex(&b))
    }

    pub fn decode(
        s: &str,
        chain: &Chain,
        log_id: &[u8; 16],
        fingerprint: &[u8; 8],
    ) -> Result<Cursor> {
        let hexpart = s
            .strip_prefix(PREFIX)
            .ok_or_else(|| bad("not a cursor returned by this log (malformed)"))?;
        let bytes = crate::chain::unhex::<{ BODY + MAC }>(hexpart)
            .ok_or_else(|| bad("malformed cursor"))?;
        let (body, m) = bytes.split_at(BODY);
        let want = mac(chain, log_id, body);
        let got: [u8; MAC] = m.try_into().expect("mac length");
        let mut w32 = [0u8; 32];
        let mut g32 = [0u8; 32];
        w32[..MAC].copy_from_slice(&want);
        g32[..MAC].copy_from_slice(&got);
        if !ct_eq(&w32, &g32) {
            return Err(bad("the cursor was altered or issued by another log"));
        }
        if &body[28..36] != fingerprint {
            return Err(bad(
                "the cursor belongs to a different query: repeat the same filters and order",
            ));
        }
        let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
        Ok(Cursor {
            ts: u64_at(0) as i64,
            seq: u64_at(8),
            snapshot: u64_at(16),
            page: u32::from_le_bytes(body[24..28].try_into().expect("4 bytes")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_forgery_and_other_query() {
        let chain = Chain::new(&crate::HmacKey::from_bytes(&[2; 32]).unwrap());
        let c = Cursor {
            ts: -5,
            seq: 9,
            snapshot: 100,
            page: 3,
        };
        let s = c.encode(&chain, &[1; 16], &[7; 8]);
        assert_eq!(Cursor::decode(&s, &chain, &[1; 16], &[7; 8]).unwrap(), c);
        assert!(Cursor::decode(&s, &chain, &[1; 16], &[8; 8])
            .unwrap_err()
            .to_string()
            .contains("different query"));
        assert!(Cursor::decode(&s, &chain, &[2; 16], &[7; 8])
            .unwrap_err()
            .to_string()
            .contains("altered"));
        let mut forged = s.clone().into_bytes();
        forged[5] = if forged[5] == b'0' { b'1' } else { b'0' };
        assert!(Cursor::decode(
            std::str::from_utf8(&forged).unwrap(),
            &chain,
            &[1; 16],
            &[7; 8]
        )
        .is_err());
        assert!(Cursor::decode("garbage", &chain, &[1; 16], &[7; 8]).is_err());
        assert!(Cursor::decode("c1abc", &chain, &[1; 16], &[7; 8]).is_err());
    }
}
