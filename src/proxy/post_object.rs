//! Browser form uploads (S3 POST Object) on the endpoint.
//!
//! A form's file has no length of its own (the form's Content-Length covers every field), and S3
//! refuses a PUT without one. So the file goes upstream in parts of [`PART_SIZE`]: a file that
//! ends within the first part is one PutObject with its exact length; a longer one becomes a
//! multipart upload (one part buffered at a time, so memory stays bounded whatever the file's
//! size), completed only when the whole file was read and met the policy, and aborted otherwise,
//! so a failed upload never leaves an object behind.

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::outgoing::{BodyWatch, Outgoing};
use super::timeout::{BodySent, IdleTimeout};
use super::{access, response_filter, Gateway, RequestContext};
use crate::body::{self, Body};
use crate::error::{FailureSlot, S3Error, S3ErrorCode};
use crate::presign::post::{self, PostFailure, PostTarget};
use crate::s3_request::S3Request;
use crate::upstream::Route;

/// Above S3's 5 MiB minimum part size; one part is held in memory per upload at a time.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Upstream answers read whole here (multipart ids, completion) are small XML documents.
const SMALL_ANSWER: usize = 256 * 1024;

impl Gateway {
    /// POST Object: the form's policy and signature verified, the credential's own policy
    /// checked for `s3:PutObject` on the real key, then the file streamed upstream.
    pub(super) async fn post_object(
        &self,
        req: Request<Incoming>,
        bucket: &str,
        ctx: &mut RequestContext,
    ) -> Result<Response<Body>, S3Error> {
        let public_url = self.public_url(&req, ctx)?;
        let now = time::OffsetDateTime::now_utc();
        let (parts, incoming) = req.into_parts();
        let counted = super::record::Counting::new(incoming, ctx.bytes_in.clone());
        // Every read of the form waits on the client, the fields (read before any signature
        // can be checked) as much as the file: a stall is `RequestTimeout`, as for any body.
        let limit = self.config.upstream.idle_timeout;
        let watched =
            IdleTimeout::client_body(body::boxed(counted), limit, FailureSlot::default(), BodySent::default());
        let req = Request::from_parts(parts, watched);
        let upload = post::post_object(req, bucket, &self.config.keys, now, self.config.max_clock_skew)
            .await
            .inspect_err(|e| self.metrics.auth_failure(e.code.as_str()))?;
        ctx.access_key_id = Some(upload.target.access_key_id.clone());
        let put = upload.target.as_s3_request()?;
        let policies: Vec<_> = self.config.keys.policy(&upload.target.access_key_id).into_iter().collect();
        let principal = access::Principal { access_key_id: &upload.target.access_key_id, session: None };
        access::check_policy(&policies, &put, &upload.target.headers, ctx.client.ip(), ctx.secure, principal)
            .inspect_err(|_| self.metrics.policy_denied(put.action))?;
        let route = self.router.route(Some(bucket));
        ctx.route = Some(route.name.clone());
        let to = Destination { put: &put, route, access_key_id: &upload.target.access_key_id };
        let etag = self.upload_file(&upload.target, upload.body, &upload.failure, &to).await;
        ctx.s3 = Some(put);
        match etag? {
            Ok(etag) => {
                Ok(post::post_object_response(&upload.target, etag.as_ref(), &public_url, &self.config.domains))
            }
            Err(upstream_answer) => {
                let idle = self.config.upstream.idle_timeout;
                Ok(response_filter(upstream_answer, &ctx.request_id, idle, route, false).await)
            }
        }
    }

    /// Sends the file: `Ok(Ok(etag))` when stored, `Ok(Err(answer))` for an upstream refusal to
    /// pass on, `Err` for s3gate's own errors (a body that broke the policy, among others).
    async fn upload_file(
        &self,
        target: &PostTarget,
        mut file: Body,
        failure: &PostFailure,
        to: &Destination<'_>,
    ) -> Result<Result<Option<HeaderValue>, Response<Incoming>>, S3Error> {
        let mut object_headers = target.headers.clone();
        if let Some(class) = to.route.storage_class.as_deref().and_then(|c| HeaderValue::from_str(c).ok()) {
            object_headers.insert("x-amz-storage-class", class);
        }
        let (first, ended) = read_part(&mut file, failure).await?;
        if ended {
            let resp = self.send_part(Method::PUT, object_headers, String::new(), first, to).await?;
            if !resp.status().is_success() {
                return Ok(Err(resp));
            }
            return Ok(Ok(resp.headers().get(header::ETAG).cloned()));
        }
        // Multipart: create, send parts, complete; abort on any failure.
        let resp = self.send_part(Method::POST, object_headers, "uploads".into(), Bytes::new(), to).await?;
        if !resp.status().is_success() {
            return Ok(Err(resp));
        }
        let xml = read_small(resp).await?;
        let upload_id = xml_value(&xml, "UploadId").ok_or_else(S3Error::internal)?;
        let result = self.send_parts(first, file, failure, to, &upload_id).await;
        match result {
            Ok(Ok(etags)) => {
                let mut body = String::from("<CompleteMultipartUpload>");
                for (i, etag) in etags.iter().enumerate() {
                    body.push_str(&format!(
                        "<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>",
                        i + 1,
                        xml_escape(etag)
                    ));
                }
                body.push_str("</CompleteMultipartUpload>");
                let query = format!("uploadId={}", encode(&upload_id));
                let resp = self.send_part(Method::POST, HeaderMap::new(), query, Bytes::from(body), to).await?;
                if !resp.status().is_success() {
                    return Ok(Err(resp));
                }
                // S3 can answer 200 and still report an error in the body.
                let xml = read_small(resp).await?;
                if xml.contains("<Error>") {
                    self.abort(to, &upload_id).await;
                    return Err(S3Error::new(
                        S3ErrorCode::InternalError,
                        "The upstream could not complete the upload.",
                    ));
                }
                Ok(Ok(xml_value(&xml, "ETag").and_then(|e| HeaderValue::from_str(&e).ok())))
            }
            Ok(Err(answer)) => {
                self.abort(to, &upload_id).await;
                Ok(Err(answer))
            }
            Err(e) => {
                self.abort(to, &upload_id).await;
                Err(e)
            }
        }
    }

    async fn send_parts(
        &self,
        first: Bytes,
        mut file: Body,
        failure: &PostFailure,
        to: &Destination<'_>,
        upload_id: &str,
    ) -> Result<Result<Vec<String>, Response<Incoming>>, S3Error> {
        let mut etags = Vec::new();
        let mut part = first;
        loop {
            let number = etags.len() + 1;
            let query = format!("partNumber={number}&uploadId={}", encode(upload_id));
            let resp = self.send_part(Method::PUT, HeaderMap::new(), query, part, to).await?;
            if !resp.status().is_success() {
                return Ok(Err(resp));
            }
            let etag = resp.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            etags.push(etag);
            let (next, ended) = read_part(&mut file, failure).await?;
            if next.is_empty() && ended {
                return Ok(Ok(etags));
            }
            part = next;
            if ended {
                // The last part: send it and finish.
                let number = etags.len() + 1;
                let query = format!("partNumber={number}&uploadId={}", encode(upload_id));
                let resp = self.send_part(Method::PUT, HeaderMap::new(), query, part, to).await?;
                if !resp.status().is_success() {
                    return Ok(Err(resp));
                }
                etags.push(
                    resp.headers().get(header::ETAG).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
                );
                return Ok(Ok(etags));
            }
        }
    }

    async fn abort(&self, to: &Destination<'_>, upload_id: &str) {
        let query = format!("uploadId={}", encode(upload_id));
        if let Err(e) = self.send_part(Method::DELETE, HeaderMap::new(), query, Bytes::new(), to).await {
            tracing::warn!(error = %e, "aborting a failed form upload's multipart upload failed");
        }
    }

    async fn send_part(
        &self,
        method: Method,
        mut headers: HeaderMap,
        query: String,
        data: Bytes,
        to: &Destination<'_>,
    ) -> Result<Response<Incoming>, S3Error> {
        let bodiless = data.is_empty() && method != Method::PUT;
        if !bodiless || method == Method::POST {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(data.len()));
        }
        let payload_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
        let out =
            Outgoing { method, headers, query, body: body::full(data), payload_hash, bodiless: false, handoff: None };
        let watch = BodyWatch::default();
        watch.sent.mark();
        // Signed as the form's credential would sign it: its own upstream role, or the route's.
        self.forward(out, to.put, to.route, &watch, (to.access_key_id, None)).await
    }
}

/// Where a form's file goes, and on whose behalf: every request of the upload is signed for
/// the same upstream identity.
struct Destination<'a> {
    put: &'a S3Request,
    route: &'a Route,
    access_key_id: &'a str,
}

/// Reads up to [`PART_SIZE`] bytes of the file; `true` when the file ended. A body error is the
/// form's own S3 error (a policy violation, a cut-short form).
async fn read_part(file: &mut Body, failure: &PostFailure) -> Result<(Bytes, bool), S3Error> {
    let mut buf = BytesMut::new();
    while buf.len() < PART_SIZE {
        match file.frame().await {
            None => return Ok((buf.freeze(), true)),
            Some(Err(_)) => {
                return Err(failure
                    .take()
                    .unwrap_or_else(|| S3Error::incomplete_body("The upload's file could not be read.")))
            }
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok((buf.freeze(), false))
}

async fn read_small(resp: Response<Incoming>) -> Result<String, S3Error> {
    let mut body = resp.into_body();
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| S3Error::service_unavailable("The upstream answer was cut short."))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > SMALL_ANSWER {
                return Err(S3Error::internal());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].replace("&quot;", "\"").replace("&amp;", "&"))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_values_are_found_and_unescaped() {
        let xml = "<InitiateMultipartUploadResult><UploadId>abc-123</UploadId></InitiateMultipartUploadResult>";
        assert_eq!(xml_value(xml, "UploadId").as_deref(), Some("abc-123"));
        assert_eq!(xml_value("<ETag>&quot;x&quot;</ETag>", "ETag").as_deref(), Some("\"x\""));
        assert_eq!(xml_value("<a/>", "ETag"), None);
    }
}
