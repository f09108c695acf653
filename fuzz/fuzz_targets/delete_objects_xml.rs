#![no_main]
//! libFuzzer entry point for `targets/delete_objects_xml.rs`, where the input format and the checks are.

libfuzzer_sys::fuzz_target!(|input: &[u8]| s3gate_fuzz::delete_objects_xml::run(input));
