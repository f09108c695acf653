#![no_main]
//! libFuzzer entry point for `targets/sts_form.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::sts_form::run(input));
