//! Login cost, and how much of it is argon2.
//!
//! - `argon2_verify`: baseline — one argon2id verification at OWASP
//!   parameters (m = 19 MiB, t = 2, p = 1), as the host runs it;
//! - `login`: `accounts.login` through the account component: SQL lookup,
//!   throttle bookkeeping, the same verification, session + refresh token
//!   rows, and a signed access token.
//!
//! A closing table gives p50 of each, argon2's share of a login, and the
//! throughput of logins with one and with two concurrent callers (this
//! machine has two cores; argon2 is CPU-bound).

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group};
use polyscale_auth::KeyPair;
use polyscale_host::call::CallInfo;
use polyscale_host::capabilities::credentials::{Argon2Params, Credentials, CredentialsConfig, PasswordHasher};
use polyscale_host::components;
use polyscale_host::database::{ConnectOptions, Database, SqlLimits};
use polyscale_host::registry::{ComponentStore, KindLimits, Registry, ServiceSlot};
use polyscale_host::runtime::{Runtime, RuntimeConfig};
use polyscale_host::services::account::{AccountSlot, AccountWorld};
use polyscale_host::worlds::account::AccountShared;
use tokio::runtime::Runtime as Tokio;

const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    registry: Arc<AccountSlot>,
    hasher: PasswordHasher,
    hash: String,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig::default()).unwrap();
    let open = |name: &str| format!("sqlite://{}", dir.path().join(name).display());
    let db = Database::connect(&open("account.db"), &ConnectOptions::default()).await.unwrap();
    let store = Database::connect(&open("credentials.db"), &ConnectOptions::default()).await.unwrap();
    let mut config = CredentialsConfig::new(KeyPair::generate().unwrap());
    // Nobody is throttled in a benchmark that logs in thousands of times.
    config.throttle.pair.free_failures = u32::MAX;
    let credentials = Credentials::open(store, config).await.unwrap();
    let store =
        ComponentStore::open(Database::connect(&open("components.db"), &ConnectOptions::default()).await.unwrap())
            .await
            .unwrap();
    let shared = AccountShared { db, sql_limits: SqlLimits::default(), credentials };
    let runtime_config = RuntimeConfig::default();
    let limits = KindLimits::new(runtime_config.call_limits, &runtime_config);
    let slots = Registry::new(runtime, store, 256 << 20).kind::<AccountWorld>("account", shared, limits).unwrap();
    let registry = ServiceSlot::new(slots);
    registry.bootstrap(components::ACCOUNT).await.unwrap();
    let registration = polyscale_host::bindings::account::exports::polyscale::commerce::accounts::Registration {
        email: "bench@example.com".into(),
        password: PASSWORD.into(),
        display_name: "Bench".into(),
    };
    registry
        .call(CallInfo::new("bench", None), None, move |e, s| {
            Box::pin(async move { e.polyscale_commerce_accounts().call_register(s, &registration).await })
        })
        .await
        .unwrap()
        .value
        .unwrap();
    let hasher = PasswordHasher::new(Argon2Params::OWASP);
    let hash = hasher.hash(PASSWORD).await.unwrap();
    Fixture { registry: Arc::new(registry), hasher, hash, _dir: dir }
}

async fn argon2_verify(f: &Fixture) {
    assert!(f.hasher.verify(PASSWORD, Some(&f.hash)).await.unwrap());
}

async fn login(registry: &AccountSlot) {
    let session = registry
        .call(CallInfo::new("bench", None), None, |e, s| {
            Box::pin(async move { e.polyscale_commerce_accounts().call_login(s, "bench@example.com", PASSWORD).await })
        })
        .await
        .unwrap()
        .value
        .unwrap();
    assert!(!session.access.token.is_empty());
}

fn benches(c: &mut Criterion) {
    let tokio = Tokio::new().unwrap();
    let f = tokio.block_on(fixture());
    let mut group = c.benchmark_group("login");
    group.sample_size(20).measurement_time(Duration::from_secs(8));
    group.bench_function("argon2_verify", |b| b.to_async(&tokio).iter(|| argon2_verify(&f)));
    group.bench_function("login", |b| b.to_async(&tokio).iter(|| login(&f.registry)));
    group.finish();
}

fn p50<F: AsyncFn()>(tokio: &Tokio, n: usize, f: F) -> Duration {
    let mut samples = Vec::with_capacity(n);
    tokio.block_on(async {
        for _ in 0..n {
            let start = Instant::now();
            f().await;
            samples.push(start.elapsed());
        }
    });
    samples.sort();
    samples[n / 2]
}

/// Logins per second with `callers` concurrent callers for `duration`.
fn throughput(tokio: &Tokio, registry: &Arc<AccountSlot>, callers: usize, duration: Duration) -> f64 {
    tokio.block_on(async {
        let start = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let registry = registry.clone();
                tokio::spawn(async move {
                    let mut n = 0u32;
                    while start.elapsed() < duration {
                        login(&registry).await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        f64::from(total) / start.elapsed().as_secs_f64()
    })
}

fn summary() {
    let tokio = Tokio::new().unwrap();
    let f = tokio.block_on(fixture());
    let argon = p50(&tokio, 100, || argon2_verify(&f));
    let full = p50(&tokio, 100, || login(&f.registry));
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("\nlogin, 100 timed calls each (p50, ms)");
    println!("  argon2_verify  {:>7.2}   baseline", ms(argon));
    println!(
        "  login          {:>7.2}   {:.2}× argon2_verify; argon2 is {:.0}% of a login, the rest {:.2} ms",
        ms(full),
        ms(full) / ms(argon),
        100.0 * ms(argon) / ms(full),
        ms(full) - ms(argon)
    );
    for callers in [1, 2] {
        println!(
            "  throughput, {callers} caller(s): {:.1} logins/s",
            throughput(&tokio, &f.registry, callers, Duration::from_secs(5))
        );
    }
}

criterion_group!(login_benches, benches);

fn main() {
    login_benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
