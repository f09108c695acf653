#![no_main]
//! libFuzzer entry point for `targets/tls_client_hello.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::tls_client_hello::run(input));
