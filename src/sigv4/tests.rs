//! Test support shared by the sigv4 unit tests, the tests of `sigv4.rs` itself, and the two
//! vector suites: `suite` (the generic SigV4 test suites) and `docs` (the S3 documentation's
//! worked examples). The vectors live in `../shared/testdata/sigv4` beside the repository.

mod docs;
mod suite;

use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;

use super::*;
use crate::credentials::SecretKey;

pub(crate) const SKEW: Duration = Duration::from_secs(15 * 60);
pub(crate) const WEEK: Duration = Duration::from_secs(604_800);
/// The S3 documentation's example credentials.
pub(crate) const DOCS_AKID: &str = "AKIAIOSFODNN7EXAMPLE";
pub(crate) const DOCS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

pub(crate) fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/sigv4")
}

pub(crate) fn read(path: impl AsRef<std::path::Path>) -> String {
    let path = testdata().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `20130524T000000Z` as an instant.
pub(crate) fn at(amz_date: &str) -> OffsetDateTime {
    parse_amz_date(amz_date).unwrap()
}

pub(crate) fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
    }
    map
}

/// A key store holding exactly `pairs`.
pub(crate) fn keys(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<SecretKey> {
    let pairs: Vec<(String, String)> = pairs.iter().map(|(a, s)| (a.to_string(), s.to_string())).collect();
    move |akid: &str| pairs.iter().find(|(a, _)| a == akid).map(|(_, s)| SecretKey::new(s.clone()))
}

/// Adds an `Authorization` header the way a client would, using this module's own
/// canonicalization (the vector suites check that canonicalization against AWS's).
pub(crate) fn authorize(
    method: &str,
    raw_path: &str,
    raw_query: Option<&str>,
    headers: &mut HeaderMap,
    signed: &[&str],
    akid: &str,
    secret: &str,
) {
    let date = match headers.get("x-amz-date") {
        Some(v) => parse_amz_date(v.to_str().unwrap()).unwrap(),
        None => parse_http_date(headers["date"].to_str().unwrap()).unwrap(),
    };
    let scope = Scope::s3(date, "us-east-1");
    let signed = crate::sigv4::SignedHeaders::of(signed);
    let payload = headers["x-amz-content-sha256"].to_str().unwrap().to_owned();
    let creq = canonical_request(method, raw_path, raw_query, headers, &signed, &payload, false).unwrap();
    let sts = string_to_sign(&format_amz_date(date), &scope, &creq);
    let signature = hex::encode(SigningKey::derive(secret, &scope).sign(&sts));
    let value = format!(
        "{ALGORITHM} Credential={akid}/{}, SignedHeaders={}, Signature={signature}",
        scope.to_string_scope(),
        signed.as_str()
    );
    headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
}

#[test]
fn signing_key_reproduces_the_aws_general_reference_example() {
    // `iam/iam.creq` is in fact the string to sign of the General Reference's IAM ListUsers
    // example; its published signature is 5d672d79... (also asserted by aws-sigv4's own tests).
    let file = read("aws-sig-v4-test-suite/iam/iam.creq");
    let string_to_sign = file.trim_end();
    let scope = Scope::new("20150830", "us-east-1", "iam");
    let key = SigningKey::derive("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", &scope);
    assert_eq!(
        hex::encode(key.sign(string_to_sign)),
        "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
    );
}

#[test]
fn secrets_never_show_in_debug_output() {
    let scope = Scope::s3(at("20130524T000000Z"), "us-east-1");
    let key = SigningKey::derive(DOCS_SECRET, &scope);
    assert_eq!(format!("{key:?}"), "SigningKey(<redacted>)");
    let verified = Verified {
        access_key_id: DOCS_AKID.into(),
        scope: scope.clone(),
        amz_date: "20130524T000000Z".into(),
        seed_signature: [0xab; 32],
        signing_key: key,
        payload: PayloadMode::Unsigned,
        presigned: false,
        signed_headers: crate::sigv4::SignedHeaders::of(&["host"]),
    };
    let shown = format!("{verified:?}");
    assert!(!shown.contains("abab") && !shown.contains("171, 171"), "{shown}");
    assert_eq!(scope.to_string_scope(), "20130524/us-east-1/s3/aws4_request");
}

#[test]
fn string_to_sign_has_the_four_lines() {
    let scope = Scope::s3(at("20130524T000000Z"), "us-east-1");
    assert_eq!(
        string_to_sign("20130524T000000Z", &scope, ""),
        format!("AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n{EMPTY_SHA256}")
    );
}

#[test]
fn signatures_compare_by_value_and_length() {
    assert!(signatures_equal(b"abc", b"abc"));
    assert!(!signatures_equal(b"abc", b"abd"));
    assert!(!signatures_equal(b"abc", b"ab"));
}

#[test]
fn dates_parse_and_format() {
    let t = at("20130524T000000Z");
    assert_eq!(format_amz_date(t), "20130524T000000Z");
    assert_eq!(parse_http_date("Fri, 24 May 2013 00:00:00 GMT"), Some(t));
    let offset = t.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
    assert_eq!(format_amz_date(offset), "20130524T000000Z");
    for bad in ["20130524T000000", "2013-05-24T00:00:00Z", "20131324T000000Z", "20130524T000000Z "] {
        assert_eq!(parse_amz_date(bad), None, "{bad}");
    }
    assert_eq!(parse_http_date("Fri, 24 May 2013 00:00:00 +0000"), None);
}

#[test]
fn digests_are_written_as_lowercase_hex() {
    let empty: [u8; 32] = Sha256::digest(b"").into();
    assert_eq!(sha256_hex(b""), EMPTY_SHA256);
    assert_eq!(&hex32(&empty)[..], EMPTY_SHA256.as_bytes());
    let mut out = String::from("sig=");
    push_hex(&mut out, &[0xab; 32]);
    assert_eq!(out, format!("sig={}", "ab".repeat(32)));
}

/// The hand-written readers agree with the general ones they replace, on anything.
mod readers {
    use proptest::prelude::*;

    use super::*;

    fn by_format(value: &str) -> Option<OffsetDateTime> {
        if value.len() != 16 || !value.is_ascii() {
            return None;
        }
        PrimitiveDateTime::parse(value, AMZ_DATE_FORMAT).ok().map(PrimitiveDateTime::assume_utc)
    }

    fn by_hex_crate(value: &str) -> Option<[u8; 32]> {
        let mut out = [0u8; 32];
        (value.len() == 64).then_some(())?;
        hex::decode_to_slice(value, &mut out).ok().map(|()| out)
    }

    #[test]
    fn amz_dates_at_the_edges() {
        for good in ["20130524T000000Z", "20240229T235959Z", "00010101T000000Z", "99991231T235959Z"] {
            assert_eq!(parse_amz_date(good), by_format(good), "{good}");
            assert!(parse_amz_date(good).is_some(), "{good}");
        }
        for bad in [
            "20230229T000000Z", // not a leap year
            "20130524T240000Z",
            "20130524T006000Z",
            "20130524T000060Z",
            "20130000T000000Z",
            "20130500T000000Z",
            "20130524t000000Z",
            "20130524T000000z",
            "+0130524T000000Z",
            "2013052٤T000000Z",
            "20130524T00000 Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
            assert_eq!(by_format(bad), None, "{bad}");
        }
    }

    #[test]
    fn hex_digests_at_the_edges() {
        let lower = "0123456789abcdef".repeat(4);
        assert_eq!(parse_hex32(&lower), by_hex_crate(&lower));
        assert_eq!(parse_hex32(&lower.to_uppercase()), by_hex_crate(&lower));
        for bad in ["g".repeat(64), format!("{}G", &lower[1..]), format!(" {}", &lower[1..]), lower[..63].to_owned()] {
            assert_eq!(parse_hex32(&bad), None, "{bad}");
        }
        assert_eq!(parse_hex32(&format!("{lower}0")), None);
    }

    proptest! {
        #[test]
        fn amz_dates_read_as_the_time_crate_reads_them(
            digits in prop::collection::vec(prop::sample::select(b"0123456789T Z+-".to_vec()), 16),
            year in 0u32..10_000, month in 0u32..14, day in 0u32..33, h in 0u32..26, m in 0u32..62, s in 0u32..62,
        ) {
            let shaped = format!("{year:04}{month:02}{day:02}T{h:02}{m:02}{s:02}Z");
            prop_assert_eq!(parse_amz_date(&shaped), by_format(&shaped), "{}", shaped);
            let noise = String::from_utf8(digits).unwrap();
            prop_assert_eq!(parse_amz_date(&noise), by_format(&noise), "{}", noise);
        }

        #[test]
        fn hex_reads_as_the_hex_crate_reads_it(value in "[0-9a-fA-F]{64}|[0-9a-gA-G ]{62,66}|.{64}") {
            prop_assert_eq!(parse_hex32(&value), by_hex_crate(&value));
        }
    }
}

#[test]
fn signatures_made_in_the_threads_buffers_are_those_of_fresh_strings_and_large_buffers_go() {
    let scope = Scope::s3(at("20130524T000000Z"), "us-east-1");
    let key = SigningKey::derive(DOCS_SECRET, &scope);
    let capacities = || SCRATCH.with(|s| (s.borrow().0.capacity(), s.borrow().1.capacity()));
    for creq in ["GET\n/k\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD".to_owned(), "x".repeat(4 * SCRATCH_KEPT)] {
        let ours = signature_of(&key, "20130524T000000Z", &scope, |out| {
            out.push_str(&creq);
            Ok::<(), std::convert::Infallible>(())
        });
        let fresh = key.sign(&string_to_sign("20130524T000000Z", &scope, &creq));
        assert_eq!(ours, Ok(fresh));
        let (kept_creq, kept_sts) = capacities();
        assert!(kept_creq <= SCRATCH_KEPT && kept_sts <= SCRATCH_KEPT, "{kept_creq} {kept_sts}");
    }
    // A small request's buffers stay for the next one.
    let Ok(_) = signature_of(&key, "20130524T000000Z", &scope, |out| {
        out.push_str("GET\n/\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD");
        Ok::<(), std::convert::Infallible>(())
    });
    let (kept_creq, kept_sts) = capacities();
    assert!(kept_creq > 0 && kept_sts > 0, "{kept_creq} {kept_sts}");
    // A write that fails leaves its error, and no signature.
    assert_eq!(signature_of(&key, "20130524T000000Z", &scope, |_| Err("refused")), Err("refused"));
}
