//! See `auditlog_fuzz::frame_decode` for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auditlog_fuzz::frame_decode::run(data));
