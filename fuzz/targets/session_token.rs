//! Session tokens (`session::SessionKeys::open`): `x-amz-security-token` arrives with every
//! request made with temporary credentials, and is opened before any signature is checked.
//!
//! Input: the first byte picks the test, the rest is a token to open or text to seal.
//!
//! Checks: opening any token a client could send never panics and never succeeds for one that
//! was not sealed with the key (AES-256-GCM); claims sealed and opened again are the same.

use s3gate::session::{new_secret, SessionClaims, SessionError, SessionKey, SessionKeys};

const NOW: i64 = 1_800_000_000;

/// One input, checked as described above; panics on a failed check.
pub fn run(input: &[u8]) {
    let keys = SessionKeys::new(vec![SessionKey::new([7u8; 32])]).expect("one key");
    let Some((&mode, rest)) = input.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    if mode % 2 == 0 {
        // Anything at all: only a token this key sealed may open.
        match keys.open(&text, NOW) {
            Ok(claims) => panic!("a token that was never sealed opened: {claims:?}"),
            Err(SessionError::Malformed | SessionError::UnknownKey | SessionError::Tampered) => {}
            Err(SessionError::Expired) => panic!("an unsealed token reached the expiry check"),
        }
    } else {
        let claims = SessionClaims {
            access_key_id: "ASIAFUZZFUZZFUZZFUZZ".to_owned(),
            secret: new_secret(),
            issued: NOW - 10,
            expires: NOW + 3_600,
            parent: None,
            role: Some(format!("arn:aws:iam::000000000000:role/{text}")),
            session_name: Some(text.to_string()),
            issuer: None,
            subject: Some(text.to_string()),
            source_identity: None,
            tags: vec![(text.to_string(), text.to_string())],
            policy: None,
        };
        let token = keys.seal(&claims);
        assert_eq!(keys.open(&token, NOW).expect("a sealed token opens"), claims);
        assert_eq!(keys.open(&token, NOW + 3_600), Err(SessionError::Expired));
    }
}
