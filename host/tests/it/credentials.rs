//! The credentials store's sweeper, through the `credentials` capability
//! as the account component calls it: what it deletes changes no answer.

use std::sync::Arc;
use std::time::Duration;

use polyscale_host::bindings::credentials::{CredentialsError, Host};
use polyscale_host::capabilities::credentials::{
    CallBinding, Clock, Credentials, CredentialsConfig, CredentialsCtxView, Swept,
};
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
    let mut cap = CredentialsCtxView {
        credentials: &credentials,
        client: "203.0.113.7",
        caller: None,
        binding: &mut CallBinding::proven(&["acct-1", "acct-2"]),
    };

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
    let mut cap = CredentialsCtxView {
        credentials: &credentials,
        client: "198.51.100.4",
        caller: None,
        binding: &mut CallBinding::default(),
    };
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

/// The wait a throttled check asks for, if it was throttled.
fn throttled<T>(answer: &Result<T, CredentialsError>) -> Option<u64> {
    match answer {
        Err(CredentialsError::Throttled(ms)) => Some(*ms),
        _ => None,
    }
}

/// A clock the test moves by hand: waits are checked exactly, without
/// sleeping.
#[derive(Clone)]
struct TestClock(Arc<std::sync::atomic::AtomicI64>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(now_ms().into()))
    }
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn open_with_clock(db: Database) -> (Arc<Credentials>, TestClock) {
    let clock = TestClock::new();
    let mut config = CredentialsConfig::new(polyscale_auth::KeyPair::generate().unwrap());
    // Cheap hashing: these tests make hundreds of checks.
    config.argon2 =
        polyscale_host::capabilities::credentials::Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };
    config.clock = Arc::new(clock.clone());
    (Credentials::open(db, config).await.unwrap(), clock)
}

const OWNER_PASSWORD: &str = "correct horse battery staple";

/// Fails `failures` times against `account` (None: an unknown email), from
/// the address `client(i)` for the i-th try. Whenever the capability says
/// to wait, the clock moves by exactly that wait and the same try is made
/// again. Returns every wait it was told, in order.
async fn hammer(
    credentials: &Arc<Credentials>,
    clock: &TestClock,
    account: impl Fn(usize) -> Option<String>,
    client: impl Fn(usize) -> String,
    failures: usize,
) -> Vec<u64> {
    let mut waits = Vec::new();
    let mut i = 0;
    while i < failures {
        let address = client(i);
        let mut cap =
            CredentialsCtxView { credentials, client: &address, caller: None, binding: &mut CallBinding::default() };
        match cap.verify_password(account(i), "wrong guess".into()).await.unwrap() {
            Err(CredentialsError::InvalidCredentials) => i += 1,
            Err(CredentialsError::Throttled(ms)) => {
                waits.push(ms);
                clock.advance(ms as i64);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    waits
}

/// The waits a rule imposes after each counted failure (free failures, base,
/// cap, in seconds), as the default policy states them.
fn doubling(free: usize, base_s: u64, cap_s: u64, failures: usize) -> Vec<u64> {
    (1..=failures).filter(|n| *n > free).map(|n| (base_s << (n - free - 1).min(20)).min(cap_s) * 1000).collect()
}

on_both!(one_address_hammering_one_account_waits_up_to_fifteen_minutes_, one_address_hammering_one_account);
async fn one_address_hammering_one_account(db: Database) {
    let (credentials, clock) = open_with_clock(db).await;
    let mut owner = CredentialsCtxView {
        credentials: &credentials,
        client: "198.51.100.20",
        caller: None,
        binding: &mut CallBinding::default(),
    };
    owner.set_password("acct-1".into(), OWNER_PASSWORD.into()).await.unwrap().unwrap();

    let waits = hammer(&credentials, &clock, |_| Some("acct-1".into()), |_| "203.0.113.7".into(), 30).await;
    // Each wait is the longest of the pair (5 free, 2 s doubling, 15 min
    // cap), the account (10 free, 1 s, 1 min) and the address (20 free,
    // 2 s, 15 min) rules, after the failure before it.
    let (pair, account, client) = (doubling(5, 2, 900, 29), doubling(10, 1, 60, 29), doubling(20, 2, 900, 29));
    let expected: Vec<u64> = (0..pair.len())
        .map(|i| {
            let n = i + 6; // the failure that set this wait
            let at = |rule: &Vec<u64>, free: usize| if n > free { rule[n - free - 1] } else { 0 };
            pair[i].max(at(&account, 10)).max(at(&client, 20))
        })
        .collect();
    assert_eq!(waits, expected);
    assert_eq!(waits.iter().max(), Some(&900_000), "the pair and address waits reach 15 minutes, no more");

    // The attacker's pair waits the full 15 minutes even with the right
    // password; the owner, elsewhere, waits out only the account's minute.
    let mut attacker = CredentialsCtxView {
        credentials: &credentials,
        client: "203.0.113.7",
        caller: None,
        binding: &mut CallBinding::default(),
    };
    let at_once = attacker.verify_password(Some("acct-1".into()), OWNER_PASSWORD.into()).await.unwrap();
    assert_eq!(throttled(&at_once), Some(900_000), "{:?}", at_once);
    let at_once = owner.verify_password(Some("acct-1".into()), OWNER_PASSWORD.into()).await.unwrap();
    assert_eq!(throttled(&at_once), Some(60_000), "{:?}", at_once);
    clock.advance(59_999);
    let almost = owner.verify_password(Some("acct-1".into()), OWNER_PASSWORD.into()).await.unwrap();
    assert_eq!(throttled(&almost), Some(1), "{:?}", almost);
    clock.advance(1);
    assert!(matches!(owner.verify_password(Some("acct-1".into()), OWNER_PASSWORD.into()).await.unwrap(), Ok(())));
}

on_both!(guesses_spread_over_addresses_slow_the_account_at_most_a_minute_, guesses_spread_over_addresses);
async fn guesses_spread_over_addresses(db: Database) {
    let (credentials, clock) = open_with_clock(db).await;
    let mut owner = CredentialsCtxView {
        credentials: &credentials,
        client: "198.51.100.20",
        caller: None,
        binding: &mut CallBinding::default(),
    };
    owner.set_password("acct-1".into(), OWNER_PASSWORD.into()).await.unwrap().unwrap();

    // A fresh address per guess: only the account rule ever applies.
    let waits = hammer(&credentials, &clock, |_| Some("acct-1".into()), |i| format!("192.0.2.{i}"), 40).await;
    assert_eq!(waits, doubling(10, 1, 60, 39));
    assert_eq!(waits.iter().max(), Some(&60_000), "the account alone is never slowed more than a minute");

    // The owner waits that minute at most, then gets in (and the success
    // clears the account's count: the next failure is free again).
    let at_once = owner.verify_password(Some("acct-1".into()), OWNER_PASSWORD.into()).await.unwrap();
    assert_eq!(throttled(&at_once), Some(60_000), "{:?}", at_once);
    clock.advance(60_000);
    assert!(matches!(owner.verify_password(Some("acct-1".into()), OWNER_PASSWORD.into()).await.unwrap(), Ok(())));
    let fresh = owner.verify_password(Some("acct-1".into()), "wrong guess".into()).await.unwrap();
    assert!(matches!(fresh, Err(CredentialsError::InvalidCredentials)), "{:?}", fresh);
    assert!(matches!(owner.verify_password(Some("acct-1".into()), OWNER_PASSWORD.into()).await.unwrap(), Ok(())));
}

on_both!(one_address_guessing_across_accounts_waits_up_to_fifteen_minutes_, one_address_across_accounts);
async fn one_address_across_accounts(db: Database) {
    let (credentials, clock) = open_with_clock(db).await;
    // Known and unknown accounts alike count against the address; each
    // account and pair sees one failure only.
    let account = |i: usize| if i.is_multiple_of(2) { Some(format!("acct-{i}")) } else { None };
    let waits = hammer(&credentials, &clock, account, |_| "203.0.113.99".into(), 35).await;
    // Over an hour of hammering, and the wait never drops back: the count
    // runs from the latest failure, not the first.
    assert_eq!(waits, doubling(20, 2, 900, 34));
    assert!(waits.iter().map(|w| *w as i64).sum::<i64>() > 3_600_000);
    assert_eq!(waits.iter().max(), Some(&900_000));
    // An hour without failures, and the count is forgotten: 20 free again.
    clock.advance(900_000 + 3_600_000);
    assert_eq!(hammer(&credentials, &clock, account, |_| "203.0.113.99".into(), 20).await, Vec::<u64>::new());
    // Another address is not slowed.
    let mut other = CredentialsCtxView {
        credentials: &credentials,
        client: "198.51.100.1",
        caller: None,
        binding: &mut CallBinding::default(),
    };
    let answer = other.verify_password(Some("acct-999".into()), "wrong guess".into()).await.unwrap();
    assert!(matches!(answer, Err(CredentialsError::InvalidCredentials)), "{:?}", answer);
}

on_both!(sessions_expire_by_the_clock_, sessions_expire_by_the_clock);
async fn sessions_expire_by_the_clock(db: Database) {
    let (credentials, clock) = open_with_clock(db).await;
    let mut cap = CredentialsCtxView {
        credentials: &credentials,
        client: "203.0.113.7",
        caller: None,
        binding: &mut CallBinding::proven(&["acct-1"]),
    };
    let ttl = credentials_ttl_ms();
    let first = cap.start_session("acct-1".into()).await.unwrap().unwrap();
    assert_eq!(first.expires_at_ms, clock.now_ms() + ttl);
    assert!(credentials.session_live(&first.session_id).await.unwrap());

    // One millisecond before the end it still rotates, and the new token
    // does not outlive its session.
    clock.advance(ttl - 1);
    let (_, second) = cap.rotate_session(first.token).await.unwrap().unwrap();
    assert_eq!(second.expires_at_ms, first.expires_at_ms);
    assert!(credentials.session_live(&first.session_id).await.unwrap());

    // At the end it is over.
    clock.advance(1);
    assert!(!credentials.session_live(&first.session_id).await.unwrap());
    let late = cap.rotate_session(second.token).await.unwrap();
    assert!(matches!(late, Err(CredentialsError::InvalidRefreshToken)), "{:?}", late);
}

fn credentials_ttl_ms() -> i64 {
    CredentialsConfig::new(polyscale_auth::KeyPair::generate().unwrap()).refresh_ttl.as_millis() as i64
}

fn not_permitted<T>(what: &str, answer: Result<T, CredentialsError>) {
    match answer {
        Err(CredentialsError::NotPermitted(_)) => {}
        other => panic!("{what}: expected not-permitted, got {:?}", other.map(|_| ())),
    }
}

// The capability acts only for accounts the call has proven: a call that
// was merely told an account id can start no session, sign no token,
// change no password and end no sessions for it; a token names only a
// live session of its own account and roles an admin granted.
on_both!(credentials_act_only_for_proven_accounts_, credentials_act_only_for_proven_accounts);
async fn credentials_act_only_for_proven_accounts(db: Database) {
    use polyscale_host::bindings::context::Role;
    use polyscale_host::call::Caller;
    let credentials = open(db).await;
    const PASSWORD: &str = "correct horse battery staple";

    // Registration: a new account's first password binds the call to it.
    let mut signup = CallBinding::default();
    let mut cap =
        CredentialsCtxView { credentials: &credentials, client: "198.51.100.1", caller: None, binding: &mut signup };
    cap.set_password("victim".into(), PASSWORD.into()).await.unwrap().unwrap();
    let victim_session = cap.start_session("victim".into()).await.unwrap().unwrap();
    cap.issue_access_token("victim".into(), vec![Role::Customer], victim_session.session_id.clone())
        .await
        .unwrap()
        .unwrap();
    cap.set_password("mallory".into(), PASSWORD.into()).await.unwrap().unwrap();

    // Another call, told only the id.
    let mut other = CallBinding::default();
    let mut cap =
        CredentialsCtxView { credentials: &credentials, client: "203.0.113.7", caller: None, binding: &mut other };
    not_permitted("session", cap.start_session("victim".into()).await.unwrap());
    not_permitted(
        "token",
        cap.issue_access_token("victim".into(), vec![Role::Customer], victim_session.session_id.clone()).await.unwrap(),
    );
    not_permitted("password", cap.set_password("victim".into(), "attacker's choice 123".into()).await.unwrap());
    not_permitted("end sessions", cap.end_other_sessions("victim".into(), None).await.unwrap());
    assert!(credentials.session_live(&victim_session.session_id).await.unwrap());
    // A wrong password proves nothing.
    let wrong = cap.verify_password(Some("victim".into()), "guess 1234567".into()).await.unwrap();
    assert!(matches!(wrong, Err(CredentialsError::InvalidCredentials)));
    not_permitted("session after a wrong password", cap.start_session("victim".into()).await.unwrap());

    // Mallory, signed in, cannot put her token in the victim's session, nor
    // give herself a role nobody granted, nor grant one herself.
    let mut mallory = CallBinding::default();
    let mut cap =
        CredentialsCtxView { credentials: &credentials, client: "203.0.113.7", caller: None, binding: &mut mallory };
    cap.verify_password(Some("mallory".into()), PASSWORD.into()).await.unwrap().unwrap();
    let own = cap.start_session("mallory".into()).await.unwrap().unwrap();
    not_permitted(
        "someone else's session",
        cap.issue_access_token("mallory".into(), vec![Role::Customer], victim_session.session_id.clone())
            .await
            .unwrap(),
    );
    not_permitted(
        "an ungranted role",
        cap.issue_access_token("mallory".into(), vec![Role::Customer, Role::Admin], own.session_id.clone())
            .await
            .unwrap(),
    );
    not_permitted("self-grant", cap.record_role("mallory".into(), Role::Admin).await.unwrap());
    not_permitted(
        "keeping someone else's session",
        cap.end_other_sessions("mallory".into(), Some(victim_session.session_id.clone())).await.unwrap(),
    );

    // An admin caller grants; then the token may carry the role.
    let admin = Caller::operator();
    let mut granting = CallBinding::for_caller(Some(&admin));
    let mut cap = CredentialsCtxView {
        credentials: &credentials,
        client: "127.0.0.1",
        caller: Some(&admin),
        binding: &mut granting,
    };
    cap.record_role("mallory".into(), Role::Merchant).await.unwrap().unwrap();
    let mut cap =
        CredentialsCtxView { credentials: &credentials, client: "203.0.113.7", caller: None, binding: &mut mallory };
    let token = cap
        .issue_access_token("mallory".into(), vec![Role::Customer, Role::Merchant], own.session_id.clone())
        .await
        .unwrap()
        .unwrap();
    let claims = polyscale_auth::Verifier::new(credentials.public_key_pem()).unwrap().verify(&token.token).unwrap();
    assert_eq!(claims.roles, vec![polyscale_auth::Role::Customer, polyscale_auth::Role::Merchant]);
    assert_eq!(claims.sub, "mallory");
}
