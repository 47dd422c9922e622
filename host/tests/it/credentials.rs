//! The credentials store's sweeper, through the `credentials` capability
//! as the account component calls it: what it deletes changes no answer.

use std::sync::Arc;
use std::time::Duration;

use polyscale_host::bindings::credentials::{CredentialsError, Host};
use polyscale_host::capabilities::credentials::{Credentials, CredentialsConfig, CredentialsCtxView, Swept};
use polyscale_host::database::Database;

use crate::on_both;

const DAY_MS: i64 = 24 * 3600 * 1000;

async fn open(db: Database) -> Arc<Credentials> {
    let config = CredentialsConfig::new(polyscale_auth::KeyPair::generate().unwrap());
    Credentials::open(db, config).await.unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

on_both!(sweeping_ended_sessions_changes_no_answer_, sweeping_ended_sessions_changes_no_answer);
async fn sweeping_ended_sessions_changes_no_answer(db: Database) {
    let credentials = open(db).await;
    let mut cap = CredentialsCtxView { credentials: &credentials, client: "203.0.113.7" };

    // Session A stays live with a spent token; session B is logged out.
    let a0 = cap.start_session("acct-1".into()).await.unwrap().unwrap();
    let (_, a1) = cap.rotate_session(a0.token.clone()).await.unwrap().unwrap();
    let b0 = cap.start_session("acct-1".into()).await.unwrap().unwrap();
    cap.end_session(b0.token.clone()).await.unwrap().unwrap();

    // Within the retention nothing goes.
    assert_eq!(credentials.sweep(now_ms()).await.unwrap(), Swept::default());

    // Past it, B and its token go; A, live, keeps both of its tokens.
    let swept = credentials.sweep(now_ms() + 8 * DAY_MS).await.unwrap();
    assert_eq!((swept.sessions, swept.refresh_tokens), (1, 1), "{swept:?}");

    // B's token is refused as before.
    let b = cap.rotate_session(b0.token).await.unwrap();
    assert!(matches!(b, Err(CredentialsError::InvalidRefreshToken)), "{b:?}");
    // A's spent token still reveals a reuse and ends A.
    let reused = cap.rotate_session(a0.token).await.unwrap();
    assert!(matches!(reused, Err(CredentialsError::RefreshTokenReused)), "{reused:?}");
    let after = cap.rotate_session(a1.token).await.unwrap();
    assert!(matches!(after, Err(CredentialsError::InvalidRefreshToken)), "{after:?}");

    // A, revoked for the reuse, goes once past the retention; C, live,
    // stays until it has expired and the retention has passed too.
    let c0 = cap.start_session("acct-2".into()).await.unwrap().unwrap();
    let swept = credentials.sweep(c0.expires_at_ms + DAY_MS).await.unwrap();
    assert_eq!((swept.sessions, swept.refresh_tokens), (1, 2), "A and its two tokens: {swept:?}");
    let swept = credentials.sweep(c0.expires_at_ms + 8 * DAY_MS).await.unwrap();
    assert_eq!((swept.sessions, swept.refresh_tokens), (1, 1), "C, expired: {swept:?}");
}

on_both!(sweeping_throttle_counts_keeps_live_ones_, sweeping_throttle_counts_keeps_live_ones);
async fn sweeping_throttle_counts_keeps_live_ones(db: Database) {
    let credentials = open(db).await;
    let mut cap = CredentialsCtxView { credentials: &credentials, client: "198.51.100.4" };
    cap.set_password("acct-1".into(), "correct horse battery staple".into()).await.unwrap().unwrap();
    let mut throttled = false;
    for _ in 0..8 {
        match cap.verify_password(Some("acct-1".into()), "wrong".into()).await.unwrap() {
            Err(CredentialsError::InvalidCredentials) => {}
            Err(CredentialsError::Throttled(_)) => throttled = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(throttled, "the pair rule throttles after five failures");

    // Counts in their window (or locked) stay, and keep slowing the client.
    assert_eq!(credentials.sweep(now_ms()).await.unwrap().throttle_counts, 0);
    let still = cap.verify_password(Some("acct-1".into()), "correct horse battery staple".into()).await.unwrap();
    assert!(matches!(still, Err(CredentialsError::Throttled(_))), "{still:?}");

    // Past every window and lock, the client, account and pair counts go.
    let later = now_ms() + Duration::from_secs(2 * 3600).as_millis() as i64;
    assert_eq!(credentials.sweep(later).await.unwrap().throttle_counts, 3);
}
