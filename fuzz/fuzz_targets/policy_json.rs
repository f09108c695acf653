#![no_main]
//! libFuzzer entry point for `targets/policy_json.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::policy_json::run(input));
