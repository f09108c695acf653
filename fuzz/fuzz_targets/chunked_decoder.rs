#![no_main]
//! libFuzzer entry point for `targets/chunked_decoder.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::chunked_decoder::run(input));
