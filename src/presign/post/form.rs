//! The form fields before the file: who signed, what the policy allows, and what the upload
//! becomes (key, headers, the answer the browser wants).

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use time::OffsetDateTime;

use super::policy::PostPolicy;
use super::{PostTarget, SuccessAction};
use crate::credentials::KeyStore;
use crate::error::{S3Error, S3ErrorCode};
use crate::sigv4::{self, Scope, SigV4Error, SigningKey};

/// Form fields in the order sent, names lower-cased (S3 reads them case-insensitively).
#[derive(Debug, Default, Clone)]
pub(super) struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Adds a field; a second field of the same name is refused, so the value the policy
    /// checked is the only one anything could use.
    pub fn push(&mut self, name: String, value: String) -> Result<(), S3Error> {
        if self.get(&name).is_some() {
            return Err(S3Error::invalid_argument(format!("The form field {name} was given twice.")));
        }
        self.fields.push((name, value));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, S3Error> {
        self.get(name).ok_or_else(|| {
            S3Error::new(
                S3ErrorCode::InvalidArgument,
                format!("Bucket POST must contain a field named '{name}'.  If it is specified, please check the order of the fields."),
            )
        })
    }
}

/// Everything the form proved, with the file's size bounds.
pub(super) struct Checked {
    pub target: PostTarget,
    pub min_len: u64,
    pub max_len: u64,
}

/// Verifies the signature over the policy, then the policy against the form. `filename` is the
/// file part's name, for `${filename}` in the key (the key conditions see the substituted key,
/// as in S3).
pub(super) fn check(
    form: &Form,
    filename: Option<&str>,
    bucket: &str,
    keys: &KeyStore,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<Checked, S3Error> {
    if form.get("awsaccesskeyid").is_some() || form.get("signature").is_some() {
        return Err(SigV4Error::UnsupportedSigV2.into());
    }
    let Some(policy_b64) = form.get("policy") else {
        return Err(S3Error::new(S3ErrorCode::AccessDenied, "Anonymous access is not allowed; sign the policy."));
    };
    let access_key_id = verify_signature(form, policy_b64, keys, now, max_skew)?;
    let policy = PostPolicy::from_base64(policy_b64)?;
    let key = object_key(form.required("key")?, filename)?;
    let value = |field: &str| match field {
        "bucket" => Some(bucket),
        "key" => Some(key.as_str()),
        other => form.get(other),
    };
    let (min_len, max_len) = policy.check(now, form.fields.iter().map(|(n, _)| n.as_str()), value)?;
    let headers = upstream_headers(form)?;
    let success = success_action(form);
    let target = PostTarget { access_key_id, bucket: bucket.to_owned(), key, headers, success, max_len };
    Ok(Checked { target, min_len, max_len })
}

/// `x-amz-signature` = hex HMAC-SHA256 of the base64 policy with the SigV4 signing key of
/// `x-amz-credential`'s scope. Returns the access key id.
fn verify_signature(
    form: &Form,
    policy_b64: &str,
    keys: &KeyStore,
    now: OffsetDateTime,
    max_skew: std::time::Duration,
) -> Result<String, S3Error> {
    let algorithm = form.required("x-amz-algorithm")?;
    if algorithm != sigv4::ALGORITHM {
        return Err(S3Error::invalid_argument("x-amz-algorithm must be AWS4-HMAC-SHA256."));
    }
    let credential = form.required("x-amz-credential")?;
    let amz_date = form.required("x-amz-date")?;
    let signature = form.required("x-amz-signature")?;
    let malformed = |why: &str| S3Error::invalid_argument(why.to_owned());
    let mut parts = credential.rsplitn(5, '/');
    let (Some("aws4_request"), Some("s3"), Some(region), Some(date), Some(akid)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("x-amz-credential must be <key>/<date>/<region>/s3/aws4_request."));
    };
    let date_time = sigv4::parse_amz_date(amz_date).ok_or_else(|| malformed("x-amz-date must be YYYYMMDDTHHMMSSZ."))?;
    if akid.is_empty() || region.is_empty() || !amz_date.starts_with(date) || date.len() != 8 {
        return Err(malformed("x-amz-credential must name the date of x-amz-date, a region and a key."));
    }
    let claimed = sigv4::parse_hex32(signature).ok_or_else(|| malformed("x-amz-signature must be 64 hex digits."))?;
    let secret = keys.secret(akid).ok_or(SigV4Error::InvalidAccessKeyId)?;
    if date_time > now && sigv4::too_far_apart(date_time, now, max_skew) {
        return Err(SigV4Error::RequestTimeTooSkewed.into());
    }
    let scope = Scope::new(date, region, "s3");
    let computed = SigningKey::derive(secret.expose(), &scope).sign(policy_b64);
    if !sigv4::signatures_equal(&computed, &claimed) {
        return Err(SigV4Error::SignatureDoesNotMatch.into());
    }
    Ok(akid.to_owned())
}

/// The key with `${filename}` replaced by the file's base name (old browsers send a full
/// path). Refused if empty or too long. `.` and `..` segments are literal parts of the key, as
/// everywhere in S3 and in s3gate.
fn object_key(template: &str, filename: Option<&str>) -> Result<String, S3Error> {
    let base = filename.map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f)).unwrap_or("");
    let key = template.replace("${filename}", base);
    let refuse = |why: &str| S3Error::invalid_argument(why.to_owned());
    if key.is_empty() {
        return Err(refuse("User key must have a length greater than 0."));
    }
    if key.len() > 1024 {
        return Err(refuse("Your key is too long: at most 1024 bytes."));
    }
    Ok(key)
}

/// Form fields that S3 stores as the object's headers, under the header name they become.
fn header_for(field: &str) -> Option<&str> {
    const SAME: [&str; 5] = ["cache-control", "content-type", "content-disposition", "content-encoding", "expires"];
    const PREFIXES: [&str; 5] =
        ["x-amz-meta-", "x-amz-server-side-encryption", "x-amz-checksum-", "x-amz-object-lock-", "x-amz-grant-"];
    match field {
        "acl" => Some("x-amz-acl"),
        "x-amz-storage-class" | "x-amz-website-redirect-location" => Some(field),
        f if SAME.contains(&f) || PREFIXES.iter().any(|p| f.starts_with(p)) => Some(f),
        _ => None,
    }
}

fn upstream_headers(form: &Form) -> Result<HeaderMap, S3Error> {
    if form.get("tagging").is_some() {
        return Err(S3Error::not_implemented("The tagging form field is not supported."));
    }
    let mut headers = HeaderMap::new();
    for (field, value) in &form.fields {
        let Some(name) = header_for(field) else { continue };
        let bad = || S3Error::invalid_argument(format!("The form field {field} is not a valid header."));
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        headers.insert(name, HeaderValue::from_str(value).map_err(|_| bad())?);
    }
    Ok(headers)
}

/// `success_action_redirect` (or the older `redirect`) when it is an http(s) URL, else
/// `success_action_status` 200 or 201, else 204: what S3 does with them.
fn success_action(form: &Form) -> SuccessAction {
    let redirect = form.get("success_action_redirect").or_else(|| form.get("redirect"));
    if let Some(url) =
        redirect.filter(|u| u.parse::<http::Uri>().is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https"))))
    {
        return SuccessAction::Redirect(url.to_owned());
    }
    match form.get("success_action_status") {
        Some("200") => SuccessAction::Status(StatusCode::OK),
        Some("201") => SuccessAction::Status(StatusCode::CREATED),
        _ => SuccessAction::Status(StatusCode::NO_CONTENT),
    }
}
