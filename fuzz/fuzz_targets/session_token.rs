#![no_main]
//! libFuzzer entry point for `targets/session_token.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::session_token::run(input));
