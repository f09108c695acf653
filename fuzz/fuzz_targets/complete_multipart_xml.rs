#![no_main]
//! libFuzzer entry point for `targets/complete_multipart_xml.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::complete_multipart_xml::run(input));
