#![no_main]
//! libFuzzer entry point for `targets/proxy_protocol.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::proxy_protocol::run(input));
