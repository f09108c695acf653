//! S3 POST Object: a browser uploads a file with an HTML form whose policy a credential signed.
//!
//! The form fields before the file are read (they are small, and capped) and verified: the
//! signature over the policy, the policy's expiry and every condition, and that no field slipped
//! past the conditions. Only then is the file part handed on, as a stream that the proxy turns
//! into a plain upstream PUT. It is never buffered whole; `content-length-range` is enforced
//! while it streams, and a violation fails the stream before its end so nothing is stored.

mod file_body;
mod form;
pub(crate) mod policy;
#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use time::OffsetDateTime;

use crate::body::{self, Body, BoxError};
use crate::credentials::KeyStore;
use crate::error::{S3Error, S3ErrorCode};
use file_body::{file_error, FormStream, PreDataTooLarge};
pub use file_body::{FileBody, PostFailure};
use form::Form;

/// S3's limit on the form fields before the file (`MaxPostPreDataLengthExceeded` past it).
pub const MAX_FORM_FIELDS_BYTES: usize = 20 * 1024;

const MALFORMED: &str = "The body of your POST request is not well-formed multipart/form-data.";

/// What a verified form upload becomes: where it goes, and the file's bytes.
pub struct PostUpload {
    pub target: PostTarget,
    /// The file part only, streamed. Its length is unknown until it ends (the form does not say
    /// it); at most the policy's `content-length-range` maximum. It fails with the S3 error
    /// before its last chunk if the upload breaks the policy or the form is cut short.
    pub body: Body,
    /// After a failed upstream PUT: the S3 error the body failed with, if it did.
    pub failure: PostFailure,
}

/// Where the upload goes and how to answer the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostTarget {
    /// The credential that signed the policy: the proxy checks its policy for `s3:PutObject`.
    pub access_key_id: String,
    pub bucket: String,
    /// The key, with `${filename}` substituted.
    pub key: String,
    /// Headers for the upstream PUT, from the form (Content-Type, Cache-Control,
    /// Content-Disposition, Content-Encoding, Expires, x-amz-meta-*, x-amz-acl from `acl`,
    /// x-amz-storage-class, x-amz-server-side-encryption*, x-amz-checksum-*, ...).
    pub headers: HeaderMap,
    pub success: SuccessAction,
    /// The policy's `content-length-range` maximum (`u64::MAX` if it sets none): the body never
    /// yields more. S3 refuses a PUT without a length, so the proxy may buffer a body this
    /// small and send it with its length, and use a multipart upload otherwise.
    pub max_len: u64,
}

impl PostTarget {
    /// The upload as the PUT it becomes, with the headers its fields become, classified as the
    /// proxy classifies requests: the credential's policy must allow `s3:PutObject` on this key
    /// (the POST's own classification knew only the bucket), and an `acl` or Object Lock field
    /// needs the same extra permission as the header.
    pub fn as_s3_request(&self) -> Result<crate::s3_request::S3Request, S3Error> {
        Ok(super::classify_object(&http::Method::PUT, &self.bucket, &self.key, &self.headers)?)
    }
}

/// The answer S3 gives a successful form upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SuccessAction {
    /// 200 or 204 with no body, or 201 with the XML `PostResponse`.
    Status(StatusCode),
    /// 303 to this URL, with `bucket`, `key` and `etag` added to its query.
    Redirect(String),
}

/// Reads and verifies a form upload to `bucket` (from the request's path or virtual host).
///
/// `body` may be hyper's `Incoming` or any body; the proxy wraps it in its idle timeout first,
/// since reading the fields waits on the client before anything is verified, and a timeout's
/// S3 error (`RequestTimeout`) is kept as the form's. Fields after the file are not read, as in
/// S3. Errors are S3's: `PreconditionFailed` for a body that is not multipart/form-data,
/// `MalformedPOSTRequest`, `MaxPostPreDataLengthExceeded`, `InvalidArgument` for a missing
/// field or file, `AccessDenied` for an unsigned form, an expired policy ("Invalid according to
/// Policy: Policy expired.") or a failed condition, `InvalidPolicyDocument`,
/// `InvalidAccessKeyId`, `SignatureDoesNotMatch`.
pub async fn post_object<B>(
    req: Request<B>,
    bucket: &str,
    keys: &KeyStore,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<PostUpload, S3Error>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let boundary = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|ct| ct.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"))
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| {
            S3Error::new(
                S3ErrorCode::PreconditionFailed,
                "Bucket POST must be of the enclosure-type multipart/form-data.",
            )
        })?;
    let file_reached = Arc::new(AtomicBool::new(false));
    let stream = FormStream::new(req.into_body(), file_reached.clone());
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    let mut budget = MAX_FORM_FIELDS_BYTES;
    let file = loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Err(no_file()),
            Err(e) => return Err(form_error(&e)),
        };
        let name = field.name().ok_or_else(malformed)?.to_ascii_lowercase();
        if name == "file" {
            break field;
        }
        budget = budget.checked_sub(name.len()).ok_or_else(too_large)?;
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| form_error(&e))? {
            budget = budget.checked_sub(chunk.len()).ok_or_else(too_large)?;
            value.extend_from_slice(&chunk);
        }
        let value = String::from_utf8(value).map_err(|_| malformed())?;
        form.push(name, value)?;
    };
    file_reached.store(true, Ordering::Release);
    let checked = form::check(&form, file.file_name(), bucket, keys, now, max_skew)?;
    let failure = PostFailure::default();
    let file_body = FileBody::new(file, checked.min_len, checked.max_len, failure.clone());
    Ok(PostUpload { target: checked.target, body: body::boxed(file_body), failure })
}

fn malformed() -> S3Error {
    S3Error::malformed_post_request(MALFORMED)
}

fn too_large() -> S3Error {
    S3Error::new(
        S3ErrorCode::MaxPostPreDataLengthExceeded,
        "Your POST request fields preceding the upload file were too large.",
    )
}

fn no_file() -> S3Error {
    S3Error::invalid_argument("POST requires exactly one file upload per request.")
}

/// A parser error before the file: the fields were too large, the body could not be read
/// (kept as the read's own error), or the form is malformed (cut short included: a form that
/// ends before its file is no upload).
fn form_error(e: &multer::Error) -> S3Error {
    match e {
        multer::Error::StreamReadFailed(inner) if inner.is::<PreDataTooLarge>() => too_large(),
        multer::Error::StreamReadFailed(_) => file_error(e),
        _ => malformed(),
    }
}

/// S3's answer once the upstream PUT succeeded: `etag` is its ETag header; the `Location` is
/// the object's URL under `public_url` (addressed as minted URLs are).
pub fn post_object_response(
    target: &PostTarget,
    etag: Option<&HeaderValue>,
    public_url: &Uri,
    domains: &[String],
) -> Response<Body> {
    let etag_text = etag.and_then(|v| v.to_str().ok()).unwrap_or("");
    let scheme = public_url.scheme_str().unwrap_or("https");
    let location = super::object_location(public_url, domains, &target.bucket, &target.key)
        .map(|(host, path)| format!("{scheme}://{host}{path}"))
        .unwrap_or_default();
    let mut resp = match &target.success {
        SuccessAction::Redirect(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            let to = format!(
                "{url}{sep}bucket={}&key={}&etag={}",
                query_encode(&target.bucket),
                query_encode(&target.key),
                query_encode(etag_text)
            );
            let mut resp = Response::new(body::empty());
            *resp.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&to) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return with_etag(resp, etag);
        }
        SuccessAction::Status(StatusCode::CREATED) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<PostResponse><Location>{}</Location>\
                 <Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></PostResponse>",
                xml_escape(&location),
                xml_escape(&target.bucket),
                xml_escape(&target.key),
                xml_escape(etag_text)
            );
            let mut resp = Response::new(body::full(xml));
            *resp.status_mut() = StatusCode::CREATED;
            resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/xml"));
            resp
        }
        SuccessAction::Status(status) => {
            let mut resp = Response::new(body::empty());
            *resp.status_mut() = *status;
            resp
        }
    };
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    with_etag(resp, etag)
}

fn with_etag(mut resp: Response<Body>, etag: Option<&HeaderValue>) -> Response<Body> {
    if let Some(etag) = etag {
        resp.headers_mut().insert(header::ETAG, etag.clone());
    }
    resp
}

fn query_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
