//! See `auditlog_fuzz::event_json` for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // The shared log is opened by the first accepted event: once before fuzzing starts, so
    // that its one-time allocations are not reported as a leak of whichever input came first.
    init: {
        auditlog_fuzz::event_json::run(br#"{"event_type":"authentication","action":"user_login"}"#);
    },
    |data: &[u8]| {
        auditlog_fuzz::event_json::run(data);
    }
);
