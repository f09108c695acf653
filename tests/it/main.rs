//! Integration tests: a real S3 server (s3s-fs, in-process), s3gate in front of it, and real
//! clients (aws-sdk-s3, raw signed HTTP, and the external CLIs) talking to s3gate.

mod support;

mod access;
mod architecture;
mod clients;
mod config;
mod delete_objects;
mod deploy;
mod early;
mod endpoint;
mod errors;
mod forward;
mod hardening;
mod limits;
mod logs;
mod observe;
mod operations;
mod payloads;
mod presign;
mod presign_wired;
mod streaming;
mod sts;
mod tls;
mod transparent;
