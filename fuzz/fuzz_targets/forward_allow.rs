#![no_main]
//! libFuzzer entry point for `targets/forward_allow.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::forward_allow::run(input));
