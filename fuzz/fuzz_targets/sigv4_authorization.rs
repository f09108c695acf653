#![no_main]
//! libFuzzer entry point for `targets/sigv4_authorization.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::sigv4_authorization::run(input));
