#![no_main]
//! libFuzzer entry point for `targets/post_policy.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::post_policy::run(input));
