//! See `auditlog_fuzz::segment_open` for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // One input that opens, appends and reopens, run before fuzzing starts: the one-time
    // allocations it makes (the template log, the main thread's thread-local destructor list)
    // would otherwise be reported as a leak of whichever input came first.
    init: {
        auditlog_fuzz::segment_open::run(&[2]);
    },
    |data: &[u8]| {
        auditlog_fuzz::segment_open::run(data);
    }
);
