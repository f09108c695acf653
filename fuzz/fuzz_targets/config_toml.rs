#![no_main]
//! libFuzzer entry point for `targets/config_toml.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::config_toml::run(input));
