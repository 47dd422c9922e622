//! `cargo xtask <command>`: the project's orchestration in Rust, so it runs
//! the same everywhere.
//!
//! - `test`: the whole test suite. Builds the example plugins (as
//!   `plugin-examples` does; the tests find them through
//!   `PLUGIN_EXAMPLES_DIR`), starts one throwaway PostgreSQL cluster
//!   for the run (unless `DATABASE_URL` is set), then runs every test of
//!   the host workspace (with cargo-nextest when installed) and the guest
//!   crates' unit tests.
//! - `bench`: the benchmarks (release build).
//! - `load [--smoke]`: the end-to-end load harness (`load.rs`): starts the
//!   system, drives each scenario, checks every answer, prints req/s and
//!   latency against a ceiling measured in the same run.
//! - `plugin-examples [--out DIR]`: builds the example plugins of
//!   `plugins/examples/` (Rust, Python, JavaScript, C) into
//!   `$CARGO_TARGET_DIR/plugin-examples/` with `manifest.json`, checks them
//!   against `polyscale:plugin@1.0.0` and runs each once on a sample cart.

mod load;
mod plugin_examples;

use std::process::{Command, ExitCode};

use polyscale_testkit::pg::PgCluster;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("plugin-examples") => plugin_examples::run(&args[1..]).map(drop),
        Some("load") => load::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|bench> [extra args for the test runner]\n       cargo xtask plugin-examples [--out DIR]\n       cargo xtask load [--smoke] [--duration S] [--warmup S] [--connections N] [--no-postgres] [--binary PATH]"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(mut cmd: Command) -> Result<(), String> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{cmd:?} failed with {status}")) }
}

fn has_nextest() -> bool {
    cargo().args(["nextest", "--version"]).output().is_ok_and(|o| o.status.success())
}

fn test(extra: &[String]) -> Result<(), String> {
    // The example plugins, in every language, for the end-to-end tests. A
    // failure here fails the run, but after the other tests have run.
    let examples_result = plugin_examples::run(&[]).map(|examples| {
        eprintln!("xtask: PLUGIN_EXAMPLES_DIR={}", examples.display());
        // SAFETY: single-threaded at this point; children inherit it.
        unsafe { std::env::set_var("PLUGIN_EXAMPLES_DIR", &examples) };
    });
    if let Err(e) = &examples_result {
        eprintln!("xtask: building the example plugins failed; running the tests without them: {e}");
    }

    // One cluster for the whole run; each test makes its own database.
    let _cluster = match std::env::var("DATABASE_URL") {
        Ok(url) => {
            eprintln!("xtask: PostgreSQL tests use DATABASE_URL ({})", url.split('@').next_back().unwrap_or_default());
            None
        }
        Err(_) => {
            let cluster = PgCluster::start().map_err(|e| format!("starting PostgreSQL for the tests: {e}"))?;
            eprintln!("xtask: PostgreSQL tests use a throwaway cluster at {}", cluster.url);
            // SAFETY: single-threaded at this point; children inherit it.
            unsafe { std::env::set_var("DATABASE_URL", &cluster.url) };
            Some(cluster)
        }
    };

    // Tests that need an outside service are `#[ignore]`d, so a run without
    // it reports them as skipped rather than passed.
    let elasticsearch = std::env::var_os("ELASTICSEARCH_URL").is_some_and(|url| !url.is_empty());
    if elasticsearch {
        eprintln!("xtask: ELASTICSEARCH_URL is set; the Elasticsearch run of the search suite is included");
    } else {
        eprintln!("xtask: ELASTICSEARCH_URL is not set; the Elasticsearch run of the search suite is skipped");
    }
    let mut host = cargo();
    if has_nextest() {
        host.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
        if elasticsearch {
            host.args(["--run-ignored", "all"]);
        }
        host.args(extra);
    } else {
        eprintln!("xtask: cargo-nextest not found; using cargo test");
        host.args(["test", "--workspace", "--no-fail-fast"]).args(extra);
        if elasticsearch {
            host.args(["--", "--include-ignored"]);
        }
    }
    let host_result = run(host);

    let mut guests = cargo();
    guests.args([
        "test",
        "--manifest-path",
        "plugins/Cargo.toml",
        "-p",
        "polyscale-guest",
        "-p",
        "account-component",
        "-p",
        "order-component",
        "-p",
        "tiered-discount-plugin",
        "-p",
        "max-quantity-plugin",
        "--lib",
    ]);
    let guest_result = run(guests);

    // Benchmarks are not run here (they are measurements, not tests), but
    // they must keep compiling.
    let mut benches = cargo();
    benches.args(["check", "--workspace", "--benches", "--quiet"]);
    let bench_result = run(benches);

    examples_result.and(host_result).and(guest_result).and(bench_result)
}

fn bench(extra: &[String]) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["bench", "--workspace"]).args(extra);
    run(cmd)
}
