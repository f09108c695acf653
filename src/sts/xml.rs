//! STS answers in the Query API's XML, element for element as AWS STS writes them, since the
//! SDKs parse them with the same models.

use std::fmt::Write;

use quick_xml::escape::escape;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Action, Issued, StsError, NAMESPACE};

/// `<XResponse><XResult>...</XResult><ResponseMetadata>...` for an issued session.
pub fn response_xml(issued: &Issued, request_id: &str) -> String {
    let action = issued.action.as_str();
    let c = &issued.claims;
    let mut x =
        format!(r#"<?xml version="1.0" encoding="UTF-8"?><{action}Response xmlns="{NAMESPACE}"><{action}Result>"#);
    if issued.action == Action::AssumeRoleWithWebIdentity {
        element(&mut x, "SubjectFromWebIdentityToken", c.subject.as_deref());
        element(&mut x, "Audience", issued.audience.as_deref());
        element(&mut x, "Provider", c.issuer.as_deref());
    }
    if let Some((arn, id)) = &issued.assumed {
        x.push_str("<AssumedRoleUser>");
        element(&mut x, "Arn", Some(arn));
        element(&mut x, "AssumedRoleId", Some(id));
        x.push_str("</AssumedRoleUser>");
    }
    x.push_str("<Credentials>");
    element(&mut x, "AccessKeyId", Some(&c.access_key_id));
    element(&mut x, "SecretAccessKey", Some(&c.secret.0));
    element(&mut x, "SessionToken", Some(&issued.token));
    element(&mut x, "Expiration", Some(&expiration(c.expires)));
    x.push_str("</Credentials>");
    if let Some(size) = issued.packed_policy_size {
        element(&mut x, "PackedPolicySize", Some(&size.to_string()));
    }
    if issued.action != Action::GetSessionToken {
        element(&mut x, "SourceIdentity", c.source_identity.as_deref());
    }
    let _ = write!(
        x,
        "</{action}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    );
    x
}

/// `<ErrorResponse><Error><Type>Sender</Type><Code>...`, as STS answers a refusal.
pub fn error_xml(e: &StsError, request_id: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><ErrorResponse xmlns="{NAMESPACE}"><Error><Type>{}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>"#,
        e.fault(),
        e.code,
        escape(e.message.as_ref()),
        escape(request_id)
    )
}

fn element(x: &mut String, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        let _ = write!(x, "<{name}>{}</{name}>", escape(v));
    }
}

/// ISO 8601 in UTC with a `Z`, as STS writes `Expiration`.
fn expiration(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix).ok().and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
}
