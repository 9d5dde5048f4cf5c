//! The `endpoint` target: one `Endpoint` driven by a fuzzer-chosen sequence of packets, clock
//! advances and application calls must never panic. The harness and the input format are in
//! `src/endpoint.rs` (`braid_fuzz::endpoint`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    braid_fuzz::endpoint::run(data);
});
