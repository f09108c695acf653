//! `s3gate presign s3://BUCKET/KEY`: mints a URL offline from the gateway's own configuration.
//!
//! It reads the same flags, environment and file as `serve`, so the URL names the same public
//! host and is signed with a credential the running gateway accepts. Nothing is contacted.

use std::collections::HashMap;

use clap::Args;
use http::Method;
use time::OffsetDateTime;

use super::{mint, parse_duration, parse_public_url, MintRequest, Minted};
use crate::config::{read_config_file, Config, Files, Resolved, ServeArgs};
use crate::credentials::Credential;

/// `s3gate presign` flags; the gateway's own flags (`--config`, `--credentials`, `--domain`,
/// `--public-url`, ...) are accepted too.
#[derive(Debug, Clone, Args)]
pub struct PresignArgs {
    /// The object, as `s3://BUCKET/KEY`.
    #[arg(value_name = "s3://BUCKET/KEY")]
    pub object: String,
    /// GET (download), PUT (upload), HEAD or DELETE.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// How long the URL works: `3600`, `90s`, `15m`, `12h`, `7d` (at most 7 days).
    #[arg(long, default_value = "1h")]
    pub expires: String,
    /// For PUT: the Content-Type the uploader must send.
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Which client credential signs the URL; needed when several are configured.
    #[arg(long, value_name = "AKID")]
    pub access_key_id: Option<String>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Mints the URL `args` describe. `env` is the process environment (`S3GATE_*`).
pub fn run(args: &PresignArgs, env: &HashMap<String, String>, now: OffsetDateTime) -> Result<Minted, String> {
    let (bucket, key) = parse_s3_url(&args.object)?;
    let method: Method = args.method.to_ascii_uppercase().parse().map_err(|_| "--method: not a method".to_owned())?;
    let expires = parse_duration(&args.expires).map_err(|e| format!("--expires: {e}"))?;
    let file = match &args.serve.config {
        Some(path) => Some(read_config_file(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let resolved = Config::resolve(&args.serve, env, file.as_deref()).map_err(|e| e.to_string())?;
    let files = Files::read(&resolved);
    let first_listed = first_listed_credential(&resolved, &files)?;
    let config = Config::validate_with(resolved, &files).map_err(|e| e.to_string())?;
    let credential = match (&args.access_key_id, first_listed) {
        (Some(akid), _) => match config.keys.secret(akid) {
            Some(secret) => Credential { access_key_id: akid.clone(), secret },
            None => return Err(format!("--access-key-id: {akid} is not one of the configured client credentials")),
        },
        (None, Some(only)) if config.keys.len() == 1 => only,
        (None, _) => {
            return Err(format!(
                "{} client credentials are configured; choose one with --access-key-id",
                config.keys.len()
            ))
        }
    };
    let public_url = match &config.public_url {
        Some(url) => url.clone(),
        None => default_public_url(&config)?,
    };
    let req = MintRequest { bucket, key, method, expires, content_type: args.content_type.clone() };
    mint(&req, &credential, &public_url, &config.domains, &config.upstream.region, now).map_err(|e| e.to_string())
}

/// `s3://bucket/key/with/slashes` -> (`bucket`, `key/with/slashes`); the key is taken as
/// written, not percent-decoded, as the AWS CLI reads `s3://` paths.
fn parse_s3_url(text: &str) -> Result<(String, String), String> {
    let rest = text.strip_prefix("s3://").ok_or_else(|| format!("expected s3://BUCKET/KEY, got {text:?}"))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket.to_owned(), key.to_owned())),
        _ => Err(format!("expected s3://BUCKET/KEY with a key, got {text:?}")),
    }
}

/// The credential named first in `--credentials` / `S3GATE_CREDENTIALS` / the file's
/// `credentials`, else in the credentials file: the one to use when it is the only one.
fn first_listed_credential(resolved: &Resolved, files: &Files) -> Result<Option<Credential>, String> {
    if let Some(first) = resolved.credentials.first() {
        return Ok(Credential::parse(first));
    }
    match &resolved.credentials_file {
        Some(path) => Ok(files.credentials(path).map_err(|e| e.to_string())?.into_iter().next()),
        None => Ok(None),
    }
}

/// Without `--public-url`, the gateway's own listen address, when clients can reach it by that
/// address (not `0.0.0.0` or `::`).
fn default_public_url(config: &Config) -> Result<http::Uri, String> {
    if config.listen.ip().is_unspecified() {
        return Err(format!(
            "the gateway listens on {}, which is no address to put in a URL; give --public-url",
            config.listen
        ));
    }
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    parse_public_url(&format!("{scheme}://{}", config.listen)).map_err(|e| e.to_string())
}
