//! Fuzz targets for auditlog. Each module holds one target's property as a plain
//! `run(&[u8])` that panics on a violation, so that stable tests can run the same checks
//! (`tests/fuzz_corpus_smoke.rs` includes each of these files by path and runs it over the
//! committed seeds in `fuzz/seeds/<target>/` and over generated inputs).

pub mod event_json;
pub mod frame_decode;
pub mod ops_model;
pub mod query_parse;
pub mod segment_open;
