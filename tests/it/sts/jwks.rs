//! The identity provider's keys, as s3gate caches them: concurrent verifications share one
//! fetch, a token naming an unknown key id fetches them again (at most once per
//! `jwks_min_refresh_seconds`), and while the provider is down the last keys fetched still
//! check tokens naming them, for `jwks_max_stale_seconds`; a token naming another key cannot be
//! checked then and gets `IDPCommunicationError`, which clients retry; a reload keeps them.
//! Cache times are set to a second here, so that a test waits seconds, not an hour.

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::future::join_all;

use super::issuer::{Issuer, Signer};
use super::{start_with_provider, sts_post, web_identity_form, CI_ROLE};
use crate::support::Gateway;

/// The STS answers' codes (`ok` for a 200) for `n` web identities signed by `signer`, all at once.
async fn concurrently(gw: &Gateway, issuer: &Issuer, signer: Signer, n: usize) -> Vec<String> {
    let forms: Vec<String> = (0..n)
        .map(|i| web_identity_form(CI_ROLE, &issuer.token(signer, &issuer.claims(&format!("repo:acme/job-{i}")))))
        .collect();
    let answers = join_all(forms.iter().map(|form| sts_post(gw, form))).await;
    answers.iter().map(|a| if a.status == 200 { "ok".to_owned() } else { a.code().to_owned() }).collect()
}

async fn one(gw: &Gateway, issuer: &Issuer, signer: Signer) -> String {
    concurrently(gw, issuer, signer, 1).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_verifications_share_one_fetch_and_unknown_key_ids_cannot_force_more() {
    let (gw, issuer, _dir) = start_with_provider("", |_| {}).await;
    let answers = concurrently(&gw, &issuer, Signer::Rsa, 40).await;
    assert!(answers.iter().all(|a| a == "ok"), "{answers:?}");
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1, "40 verifications, one fetch");
    // Key ids the provider never published, within the default 30 s since the last fetch.
    let answers = concurrently(&gw, &issuer, Signer::Stranger, 40).await;
    assert!(answers.iter().all(|a| a == "InvalidIdentityToken"), "{answers:?}");
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1, "made-up key ids fetch nothing");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_when_a_token_names_it() {
    let (gw, issuer, _dir) = start_with_provider("jwks_min_refresh_seconds = 1", |_| {}).await;
    assert_eq!(one(&gw, &issuer, Signer::Rsa).await, "ok");
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1);
    issuer.rotate();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answers = concurrently(&gw, &issuer, Signer::Rotated, 40).await;
    assert!(answers.iter().all(|a| a == "ok"), "{answers:?}");
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 2, "one fetch for the new key, shared");
    assert_eq!(one(&gw, &issuer, Signer::Ec).await, "ok", "the older keys still count");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_provider_is_down_known_keys_still_work_for_a_bounded_time() {
    let settings = "jwks_cache_seconds = 1\njwks_min_refresh_seconds = 1\njwks_max_stale_seconds = 6";
    let (gw, issuer, _dir) = start_with_provider(settings, |_| {}).await;
    assert_eq!(one(&gw, &issuer, Signer::Rsa).await, "ok");
    let fetched = tokio::time::Instant::now();
    issuer.stop();
    // The keys are past their second of freshness, and fetching them fails.
    tokio::time::sleep_until(fetched + Duration::from_millis(1100)).await;
    let answers = concurrently(&gw, &issuer, Signer::Rsa, 20).await;
    assert!(answers.iter().all(|a| a == "ok"), "a key the last fetch held still checks tokens: {answers:?}");
    assert_eq!(one(&gw, &issuer, Signer::Ec).await, "ok");
    assert_eq!(one(&gw, &issuer, Signer::Rotated).await, "IDPCommunicationError", "an unknown key cannot be checked");
    // A reload (SIGHUP) in the middle of the outage keeps the keys.
    gw.running.as_ref().expect("running").reload(&gw.args, &Default::default()).expect("reloads");
    assert_eq!(one(&gw, &issuer, Signer::Rsa).await, "ok", "the keys outlive the reload");
    // Past jwks_max_stale_seconds, even the known keys are no longer trusted.
    tokio::time::sleep_until(fetched + Duration::from_millis(7200)).await;
    assert_eq!(one(&gw, &issuer, Signer::Rsa).await, "IDPCommunicationError");
    assert_eq!(issuer.jwks_fetches.load(Ordering::SeqCst), 1, "the provider served its keys once");
    gw.stop().await;
}
