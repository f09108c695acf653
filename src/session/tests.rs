use super::*;

fn claims(expires: i64) -> SessionClaims {
    SessionClaims {
        access_key_id: new_access_key_id(),
        secret: new_secret(),
        issued: 1_000,
        expires,
        parent: None,
        role: Some("arn:aws:iam::000000000000:role/ci".into()),
        session_name: Some("job-42".into()),
        issuer: Some("https://idp.example".into()),
        subject: Some("repo:acme/app".into()),
        source_identity: Some("alice".into()),
        tags: vec![("team".into(), "blue".into())],
        policy: Some(r#"{"Version":"2012-10-17","Statement":[]}"#.into()),
    }
}

fn keys(seeds: &[u8]) -> SessionKeys {
    SessionKeys::new(seeds.iter().map(|s| SessionKey::new([*s; 32])).collect()).unwrap()
}

#[test]
fn a_sealed_token_opens_to_the_same_claims() {
    let c = claims(2_000);
    let token = keys(&[1]).seal(&c);
    assert_eq!(keys(&[1]).open(&token, 1_500).unwrap(), c);
}

#[test]
fn the_token_shows_nothing_of_its_claims() {
    let c = claims(2_000);
    let token = keys(&[1]).seal(&c);
    let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    let text = String::from_utf8_lossy(&raw);
    for secret in [c.secret.0.as_str(), "job-42", "alice", "repo:acme", &c.access_key_id] {
        assert!(!text.contains(secret), "{secret} visible in the token");
    }
    assert_ne!(keys(&[1]).seal(&c), token, "each seal draws a fresh nonce");
}

#[test]
fn an_expired_token_is_refused_at_its_expiry() {
    let token = keys(&[1]).seal(&claims(2_000));
    assert_eq!(keys(&[1]).open(&token, 2_000), Err(SessionError::Expired));
    assert!(keys(&[1]).open(&token, 1_999).is_ok());
}

#[test]
fn every_flipped_byte_fails_to_open() {
    let token = keys(&[1]).seal(&claims(2_000));
    let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    for i in 0..raw.len() {
        let mut bad = raw.clone();
        bad[i] ^= 0x01;
        let result = keys(&[1]).open(&URL_SAFE_NO_PAD.encode(&bad), 1_500);
        assert!(result.is_err(), "byte {i} changed and the token still opened");
    }
    let mut bad = raw.clone();
    bad[20] ^= 0x80;
    assert_eq!(keys(&[1]).open(&URL_SAFE_NO_PAD.encode(&bad), 1_500), Err(SessionError::Tampered));
}

#[test]
fn rotation_opens_with_any_listed_key_and_seals_with_the_first() {
    let old = keys(&[1]).seal(&claims(2_000));
    let rotated = keys(&[2, 1]);
    assert!(rotated.open(&old, 1_500).is_ok(), "a token of the old key still opens");
    let new = rotated.seal(&claims(2_000));
    assert_eq!(keys(&[1]).open(&new, 1_500), Err(SessionError::UnknownKey));
    assert!(keys(&[2]).open(&new, 1_500).is_ok());
    assert_eq!(keys(&[3]).open(&old, 1_500), Err(SessionError::UnknownKey));
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let k = keys(&[1]);
    for token in ["", "!!!", "AQ", &"A".repeat(MAX_TOKEN_LEN + 1), &URL_SAFE_NO_PAD.encode([9u8; 64])] {
        assert_eq!(k.open(token, 0), Err(SessionError::Malformed), "{token:.20}");
    }
}

#[test]
fn keys_parse_from_hex_or_base64_and_refuse_other_lengths() {
    let hex_key = SessionKey::parse(&format!("{}\n", "ab".repeat(32))).unwrap();
    let b64_key = SessionKey::parse(&base64::engine::general_purpose::STANDARD.encode([0xab; 32])).unwrap();
    assert_eq!(hex_key.id, b64_key.id);
    assert!(SessionKey::parse("abcd").is_err());
    assert!(SessionKey::parse(&base64::engine::general_purpose::STANDARD.encode([1u8; 16])).is_err());
    assert!(!format!("{hex_key:?}").contains("abab"), "a key's Debug shows its fingerprint only");
}

#[test]
fn access_key_ids_look_like_aws_temporary_ones() {
    let id = new_access_key_id();
    assert!(id.starts_with("ASIA") && id.len() == 20, "{id}");
    assert_ne!(id, new_access_key_id());
    assert_eq!(new_secret().0.len(), 40);
    let c = claims(1);
    assert!(!format!("{c:?}").contains(&c.secret.0));
}
