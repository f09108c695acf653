//! The forward proxy's rules: which destinations it may reach ([`allow`]), who may use it
//! ([`auth`]) and where it dials a destination ([`connect_to`]); and, with the same grammar,
//! which S3 names transparent mode serves ([`names`]).
//!
//! Pure data and matching, no I/O: `config` builds these from the settings and `forward`
//! applies them to each request, so both depend on this module and neither on the other.

pub mod allow;
pub mod auth;
pub mod connect_to;
pub mod names;
