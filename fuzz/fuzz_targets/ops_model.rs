//! See `auditlog_fuzz::ops_model` for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // Every operation once before fuzzing starts: the one-time allocations it makes (the
    // main thread's thread-local destructor list) would otherwise be reported as a leak of
    // whichever input came first.
    init: {
        auditlog_fuzz::ops_model::run(&[
            1, 0, 2, 1, 3, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8, 4, 9, 3, 10, 0x80, 11, 1, 12, 3,
        ]);
    },
    |data: &[u8]| {
        auditlog_fuzz::ops_model::run(data);
    }
);
