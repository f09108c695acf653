//! Phase 4, the upstream request: which headers go upstream, and the client's body wrapped by
//! its payload mode so that it is verified as it streams (see the table in
//! `docs/request-flow.md`). Nothing is signed yet: a request the upstream redirects to another
//! region is signed again.

use http::{header, HeaderValue, Method, Request};
use hyper::body::Incoming;

use super::early::{self, Handoff};
use super::payload::{AwsChunkedBody, ChunkedOutput, Sha256Body};
use super::record::{Counting, RequestContext};
use super::timeout::{BodySent, IdleTimeout};
use super::{headers, Gateway};
use crate::body::{self, Body};
use crate::error::{FailureSlot, S3Error};
use crate::s3_request::{Operation, S3Request};
use crate::sigv4::chunked::ChunkSigning;
use crate::sigv4::{self, PayloadMode, SigV4Error, Verified};
use crate::upstream::Route;

/// A request whose head passed every check: what it does, who signed it, where it goes.
#[derive(Clone, Copy)]
pub(super) struct Admitted<'a> {
    pub s3: &'a S3Request,
    pub verified: &'a Verified,
    pub route: &'a Route,
}

/// What the forwarding side watches of the client's body: the S3 error it failed with, if it
/// did, and when it was sent whole (the upstream's time to answer starts then).
#[derive(Clone, Default)]
pub(super) struct BodyWatch {
    pub failure: FailureSlot,
    pub sent: BodySent,
}

/// A request on its way upstream, before it is signed: kept unsigned so that a request that
/// has to go to another region can be signed again.
pub(super) struct Outgoing {
    pub method: Method,
    pub headers: http::HeaderMap,
    pub query: String,
    pub body: Body,
    pub payload_hash: String,
    /// No body: it can be sent again, as is, after a region redirect.
    pub bodiless: bool,
    /// Stops the body once the upstream has answered (`early`); `None` without a body.
    pub handoff: Option<Handoff>,
}

impl Gateway {
    /// Phase 4: forwarded headers and the verified body, not yet signed.
    pub(super) fn upstream_request(
        &self,
        req: Request<Incoming>,
        admitted: &Admitted<'_>,
        ctx: &RequestContext,
        watch: &BodyWatch,
    ) -> Result<Outgoing, S3Error> {
        let Admitted { s3, verified, route } = *admitted;
        let slot = watch.failure.clone();
        let (parts, incoming) = req.into_parts();
        let incoming = Counting::new(incoming, ctx.bytes_in.clone());
        let mut headers = headers::forwardable(&parts.headers, &verified.signed_headers);
        let content_length = headers::content_length(&parts.headers)?;
        let framed = content_length.is_some() || parts.headers.contains_key(header::TRANSFER_ENCODING);
        // A body the policy reads whole must be the payload itself, unframed, for the policy
        // to see what the upstream will parse (see `policy_body_checks`).
        let whole = self.reads_body_whole(s3, ctx);
        let (body, payload_hash) = match &verified.payload {
            // No Content-Length and no Transfer-Encoding: HTTP says there is no body. Say so
            // upstream with an explicit length, or hyper would pick chunked framing.
            PayloadMode::Sha256(hash) if !framed => {
                if sigv4::hex32(hash).as_slice() != sigv4::EMPTY_SHA256.as_bytes() {
                    return Err(SigV4Error::ContentSha256Mismatch.into());
                }
                headers::set_empty_body_length(&mut headers, &parts.method);
                (body::empty(), sigv4::EMPTY_SHA256.to_owned())
            }
            PayloadMode::Unsigned if !framed => {
                headers::set_empty_body_length(&mut headers, &parts.method);
                (body::empty(), sigv4::UNSIGNED_PAYLOAD.to_owned())
            }
            PayloadMode::Unsigned => {
                headers::set_content_length(&mut headers, content_length);
                (body::boxed(incoming), sigv4::UNSIGNED_PAYLOAD.to_owned())
            }
            // The same hash goes upstream, which checks the body against it (AWS S3 does), so
            // the body stays bound to the client's signature without s3gate hashing it again.
            // `--verify-body-hash` adds s3gate's own check for stores that do not; a body read
            // whole for a policy check (DeleteObjects) is always checked here.
            PayloadMode::Sha256(hash) if self.config.verify_body_hash || s3.op() == Operation::DeleteObjects => {
                headers::set_content_length(&mut headers, content_length);
                let b = Sha256Body::new(incoming, *hash, content_length, slot);
                (body::boxed(b), hex::encode(hash))
            }
            PayloadMode::Sha256(hash) => {
                headers::set_content_length(&mut headers, content_length);
                (body::boxed(incoming), hex::encode(hash))
            }
            PayloadMode::StreamingSigned { trailer } => {
                let signing = ChunkSigning::Signed {
                    key: verified.signing_key.clone(),
                    scope: verified.scope.clone(),
                    amz_date: verified.amz_date.clone(),
                    seed_signature: verified.seed_signature,
                };
                let output = if *trailer && !whole { ChunkedOutput::UnsignedTrailer } else { ChunkedOutput::Decoded };
                chunked(&parts.headers, &mut headers, incoming, signing, *trailer, output, slot)?
            }
            PayloadMode::StreamingUnsignedTrailer => {
                let output = if whole { ChunkedOutput::Decoded } else { ChunkedOutput::UnsignedTrailer };
                chunked(&parts.headers, &mut headers, incoming, ChunkSigning::Unsigned, true, output, slot)?
            }
        };
        let bodiless = http_body::Body::is_end_stream(&body);
        let (body, handoff) = if bodiless {
            watch.sent.mark();
            (body, None)
        } else {
            let (failure, sent) = (watch.failure.clone(), watch.sent.clone());
            let timed = body::boxed(IdleTimeout::client_body(body, self.config.upstream.idle_timeout, failure, sent));
            let (forwarded, handoff) = early::split(timed);
            (body::boxed(forwarded), Some(handoff))
        };
        if let Some(class) = &route.storage_class {
            if matches!(s3.op(), Operation::PutObject | Operation::CopyObject | Operation::CreateMultipartUpload) {
                if let Ok(v) = HeaderValue::from_str(class) {
                    headers.insert("x-amz-storage-class", v);
                }
            }
        }
        headers::alias_copy_source(&mut headers, &self.router);
        let query = upstream_query(parts.uri.query(), verified.presigned);
        Ok(Outgoing { method: parts.method, headers, query, body, payload_hash, bodiless, handoff })
    }
}

/// An aws-chunked client body, verified as it streams, sent upstream as `output` says. A
/// decoded body with a trailer has its trailing checksum verified here; `x-amz-trailer` then
/// stays, so that the body read whole can carry the checksum on as a header (`plain_body`).
#[allow(clippy::too_many_arguments)]
fn chunked(
    client_headers: &http::HeaderMap,
    headers: &mut http::HeaderMap,
    incoming: Counting<Incoming>,
    signing: ChunkSigning,
    trailer: bool,
    output: ChunkedOutput,
    slot: FailureSlot,
) -> Result<(Body, String), S3Error> {
    let decoded_len = headers::decoded_content_length(client_headers)?;
    let checksum = headers::announced_trailer_checksum(client_headers);
    headers::strip_aws_chunked_encoding(headers);
    headers.remove(header::CONTENT_LENGTH);
    if output == ChunkedOutput::UnsignedTrailer {
        headers.insert("x-amz-decoded-content-length", HeaderValue::from(decoded_len));
        headers::add_aws_chunked_encoding(headers);
        let b =
            AwsChunkedBody::new(incoming, signing, true, ChunkedOutput::UnsignedTrailer, decoded_len, checksum, slot);
        Ok((body::boxed(b), sigv4::STREAMING_UNSIGNED_TRAILER.to_owned()))
    } else {
        if !trailer {
            headers.remove(http::HeaderName::from_static("x-amz-trailer"));
        }
        headers::set_content_length(headers, Some(decoded_len));
        let checksum = if trailer { checksum } else { None };
        let b = AwsChunkedBody::new(incoming, signing, trailer, ChunkedOutput::Decoded, decoded_len, checksum, slot);
        Ok((body::boxed(b), sigv4::UNSIGNED_PAYLOAD.to_owned()))
    }
}

/// The upstream query: the client's own parameters as it wrote them (`delimiter=` stays
/// `delimiter=`), without the presigned-auth parameters, which never leave s3gate. The
/// upstream signer canonicalizes the encoding.
pub(super) fn upstream_query(raw: Option<&str>, presigned: bool) -> String {
    let mut out = String::new();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(k, _)| k);
        if presigned
            && sigv4::QUERY_AUTH_PARAMS.contains(&&*percent_encoding::percent_decode_str(name).decode_utf8_lossy())
        {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(pair);
    }
    out
}
