//! See `auditlog_fuzz::query_parse` for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // The pre-populated log is made by the first input: once before fuzzing starts, so that
    // its one-time allocations are not reported as a leak of whichever input came first.
    init: {
        auditlog_fuzz::query_parse::run(b"user_id=user-00001&limit=3&cursor=@");
    },
    |data: &[u8]| {
        auditlog_fuzz::query_parse::run(data);
    }
);
