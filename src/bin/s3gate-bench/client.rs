//! A minimal S3 client for load generation: path-style requests signed with `aws-sigv4` (header
//! auth, the way boto3 signs over plain HTTP) and sent over one pooled HTTP/1.1 keep-alive client,
//! over TLS (rustls, TLS 1.3 first) when the endpoint is `https://`.
//!
//! Bodies are never collected whole: PUT bodies are a clone of a shared `Bytes` (a reference count,
//! not a copy) and GET bodies are read frame by frame and only counted.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningParams, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::Error;

/// SHA-256 of the empty string: the payload hash of every request without a body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// How much of an error response body is kept for the report.
const ERROR_BODY_LIMIT: usize = 2048;

/// The `x-amz-content-sha256` a PUT is signed with.
#[derive(Debug, Clone)]
pub enum PayloadHash {
    /// Hex SHA-256 of the body, computed once per distinct body before the timed run.
    Sha256(String),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
}

impl PayloadHash {
    fn empty() -> PayloadHash {
        PayloadHash::Sha256(EMPTY_SHA256.to_owned())
    }
}

/// What came back from one request, with the body already drained.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    /// Body bytes received (for a HEAD, the `content-length` header instead).
    pub bytes: u64,
    /// The start of the body of a non-2xx reply, for the report.
    pub error_body: Option<String>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// A one-line description of a non-2xx reply.
    pub fn describe_error(&self) -> String {
        let body = self.error_body.as_deref().unwrap_or("").trim();
        format!("HTTP {}: {}", self.status.as_u16(), body)
    }
}

pub struct S3Client {
    http: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: String,
    identity: Identity,
    region: String,
}

impl S3Client {
    /// `ca_file`: PEM certificates trusted for an `https://` endpoint (none: the system's roots).
    pub fn new(
        endpoint: &str,
        access_key: &str,
        secret_key: &str,
        region: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<S3Client, Error> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_file)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        let credentials = Credentials::new(access_key, secret_key, None, None, "s3gate-bench");
        Ok(S3Client {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            identity: credentials.into(),
            region: region.to_owned(),
        })
    }

    /// `PUT /bucket`; an existing bucket (409) counts as success.
    pub async fn create_bucket(&self, bucket: &str) -> Result<Reply, Error> {
        let req = self.signed(Method::PUT, &format!("/{bucket}"), &PayloadHash::empty(), Bytes::new())?;
        let mut reply = self.send(req).await?;
        if reply.status == StatusCode::CONFLICT {
            reply.status = StatusCode::OK;
        }
        Ok(reply)
    }

    pub async fn head_object(&self, bucket: &str, key: &str) -> Result<Reply, Error> {
        let req = self.signed(Method::HEAD, &format!("/{bucket}/{key}"), &PayloadHash::empty(), Bytes::new())?;
        let resp = self.http.request(req).await?;
        let status = resp.status();
        let bytes = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        drain(resp.into_body(), false).await?;
        Ok(Reply { status, bytes, error_body: None })
    }

    pub async fn put_object(&self, bucket: &str, key: &str, body: Bytes, hash: &PayloadHash) -> Result<Reply, Error> {
        let req = self.signed(Method::PUT, &format!("/{bucket}/{key}"), hash, body)?;
        self.send(req).await
    }

    pub async fn get_object(&self, bucket: &str, key: &str) -> Result<Reply, Error> {
        let req = self.signed(Method::GET, &format!("/{bucket}/{key}"), &PayloadHash::empty(), Bytes::new())?;
        self.send(req).await
    }

    /// Builds a request for `path` (already URI-safe: the bench only makes such keys) and signs it
    /// with `hash` as `x-amz-content-sha256`.
    fn signed(
        &self,
        method: Method,
        path: &str,
        hash: &PayloadHash,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let uri = format!("{}{}", self.endpoint, path);
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params: SigningParams = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()?
            .into();
        let signable_body = match hash {
            PayloadHash::Sha256(hex) => SignableBody::Precomputed(hex.clone()),
            PayloadHash::Unsigned => SignableBody::UnsignedPayload,
        };
        let signable = SignableRequest::new(method.as_str(), uri.as_str(), std::iter::empty(), signable_body)?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let mut req = Request::builder().method(method).uri(uri).body(Full::new(body))?;
        instructions.apply_to_request_http1x(&mut req);
        Ok(req)
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> Result<Reply, Error> {
        let resp = self.http.request(req).await?;
        let status = resp.status();
        let (bytes, error_body) = drain(resp.into_body(), !status.is_success()).await?;
        Ok(Reply { status, bytes, error_body })
    }
}

/// Reads a body to its end, counting bytes; keeps the first bytes only when asked (error replies).
async fn drain(mut body: Incoming, keep: bool) -> Result<(u64, Option<String>), Error> {
    let mut count = 0u64;
    let mut kept = keep.then(Vec::new);
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            count += data.len() as u64;
            if let Some(kept) = kept.as_mut() {
                let room = ERROR_BODY_LIMIT.saturating_sub(kept.len());
                kept.extend_from_slice(&data[..room.min(data.len())]);
            }
        }
    }
    Ok((count, kept.map(|k| String::from_utf8_lossy(&k).into_owned())))
}

/// rustls with ring; trusts `ca_file` (a bench's throwaway CA) or else the system's roots.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, Error> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                roots.add(cert?)?;
            }
            if roots.is_empty() {
                return Err(format!("{}: no PEM certificate", path.display()).into());
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
