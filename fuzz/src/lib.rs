//! Fuzz targets for auditlog. Each module holds one target's property as a plain
//! `run(&[u8])` that panics on a violation, so that stable tests can run the same checks
//! (`tests/fuzz_corpus_smoke.rs` includes `frame_decode.rs` and `ops_model.rs` by path).

pub mod frame_decode;
pub mod ops_model;
pub mod segment_open;
