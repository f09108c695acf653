//! The fuzz targets' bodies, one module each. libFuzzer runs them through `fuzz_targets/`
//! (`scripts/fuzz`); the test suite replays every checked-in input through the same code
//! (`tests/fuzz_corpus.rs`), on the stable toolchain, with no separate build.

pub mod chunked_decoder;
pub mod classify;
pub mod complete_multipart_xml;
pub mod config_toml;
pub mod delete_objects_xml;
pub mod forward_allow;
pub mod policy_json;
pub mod post_policy;
pub mod proxy_protocol;
pub mod session_token;
pub mod sigv4_authorization;
pub mod sigv4_presigned;
pub mod sts_form;
pub mod tls_client_hello;
