//! The STS Query API's form (`sts::Form::parse`), the body of an unauthenticated
//! AssumeRoleWithWebIdentity as much as of a signed AssumeRole.
//!
//! Input: the form body.
//!
//! Checks: a form that parses names a known action and version 2011-06-15; every accessor the
//! issuing code uses (durations, tags, prefixes) answers without panicking; parsing is
//! deterministic.

use s3gate::sts::Form;

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let Ok(form) = Form::parse(input) else { return };
    assert_eq!(form.get("Version"), Some("2011-06-15"));
    assert_eq!(form.get("Action"), Some(form.action.as_str()));
    if let Ok(seconds) = form.duration(900, 43_200, 3_600) {
        assert!((900..=43_200).contains(&seconds), "duration {seconds} outside its bounds");
    }
    let _ = form.tags();
    let _ = form.required("RoleArn");
    let _ = form.has_prefix("PolicyArns.member.");
    let again = Form::parse(input).expect("the same form parses again");
    assert_eq!(again.action, form.action);
}
