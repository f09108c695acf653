use super::*;
use crate::session::{SessionClaims, SessionKey, SessionKeys};

fn form(text: &str) -> Result<Form, StsError> {
    Form::parse(text.as_bytes())
}

#[test]
fn a_form_needs_a_known_action_and_the_2011_version() {
    let f = form("Action=GetSessionToken&Version=2011-06-15&DurationSeconds=900").unwrap();
    assert_eq!(f.action, Action::GetSessionToken);
    assert_eq!(form("Version=2011-06-15").unwrap_err().code, "MissingParameter");
    assert_eq!(form("Action=DeleteEverything&Version=2011-06-15").unwrap_err().code, "InvalidAction");
    assert_eq!(form("Action=AssumeRole&Version=2012-01-01").unwrap_err().code, "InvalidAction");
    assert_eq!(form("Action=AssumeRole").unwrap_err().code, "MissingParameter");
}

#[test]
fn a_parameter_given_twice_or_not_utf8_is_refused() {
    let twice = form("Action=AssumeRole&Version=2011-06-15&RoleArn=a&RoleArn=b").unwrap_err();
    assert_eq!((twice.code, twice.status.as_u16()), ("ValidationError", 400));
    assert_eq!(form("Action=AssumeRole&Version=2011-06-15&X=%FF").unwrap_err().code, "ValidationError");
    assert_eq!(Form::parse(&[0xff, 0xfe]).unwrap_err().code, "ValidationError");
}

#[test]
fn form_decoding_keeps_an_encoded_plus_and_turns_a_bare_one_into_a_space() {
    let f = form("Action=AssumeRole&Version=2011-06-15&Policy=a%2Bb+c").unwrap();
    assert_eq!(f.get("Policy"), Some("a+b c"));
}

#[test]
fn durations_outside_the_limits_are_validation_errors() {
    let f = |d: &str| form(&format!("Action=GetSessionToken&Version=2011-06-15&DurationSeconds={d}")).unwrap();
    assert_eq!(f("900").duration(900, 3600, 3600).unwrap(), 900);
    for bad in ["899", "3601", "-1", "x", ""] {
        assert_eq!(f(bad).duration(900, 3600, 3600).unwrap_err().code, "ValidationError", "{bad}");
    }
    assert_eq!(form("Action=GetSessionToken&Version=2011-06-15").unwrap().duration(900, 1800, 3600).unwrap(), 1800);
}

#[test]
fn tags_pair_keys_with_values_in_order() {
    let f = form(
        "Action=AssumeRole&Version=2011-06-15&Tags.member.2.Key=b&Tags.member.2.Value=2\
         &Tags.member.1.Key=a&Tags.member.1.Value=1",
    )
    .unwrap();
    assert_eq!(f.tags().unwrap(), vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
    let half = form("Action=AssumeRole&Version=2011-06-15&Tags.member.1.Key=a").unwrap();
    assert_eq!(half.tags().unwrap_err().code, "ValidationError");
}

#[test]
fn only_a_form_post_to_the_root_is_an_sts_request() {
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "application/x-www-form-urlencoded; charset=utf-8".parse().unwrap());
    assert!(is_sts_request(&http::Method::POST, "/", None, &h));
    assert!(!is_sts_request(&http::Method::POST, "/bucket", None, &h));
    assert!(!is_sts_request(&http::Method::POST, "/", Some("delete"), &h));
    assert!(!is_sts_request(&http::Method::GET, "/", None, &h));
    h.insert("content-type", "multipart/form-data; boundary=x".parse().unwrap());
    assert!(!is_sts_request(&http::Method::POST, "/", None, &h));
}

#[test]
fn answers_have_sts_shape_and_escape_what_they_carry() {
    let keys = SessionKeys::new(vec![SessionKey::new([7; 32])]).unwrap();
    let f = form("Action=GetSessionToken&Version=2011-06-15").unwrap();
    let issued = get_session_token(&f, "AKID<&>", &keys, 1_700_000_000).unwrap();
    let xml = response_xml(&issued, "REQ1");
    assert!(xml.contains(r#"<GetSessionTokenResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">"#), "{xml}");
    assert!(xml.contains("<Expiration>2023-11-15T10:13:20Z</Expiration>"), "{xml}");
    assert!(xml.contains(&format!("<AccessKeyId>{}</AccessKeyId>", issued.claims.access_key_id)));
    let opened: SessionClaims = keys.open(&issued.token, 1_700_000_001).unwrap();
    assert_eq!(opened.parent.as_deref(), Some("AKID<&>"));
    let e = error_xml(&StsError::validation("a <b> & c"), "REQ2");
    assert!(e.contains("<Error><Type>Sender</Type><Code>ValidationError</Code><Message>a &lt;b&gt; &amp; c</Message>"));
}
