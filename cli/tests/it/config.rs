//! The one configuration, through the real binary: `polyscale config`
//! prints what `serve` would use; `serve` refuses a bad configuration at
//! start, naming the key.

use std::process::{Command, Output};

fn polyscale(args: &[&str], env: &[(&str, &str)], dir: &std::path::Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_polyscale"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    // Only what the test sets: no POLYSCALE_ variable of the caller's.
    for (name, _) in std::env::vars() {
        if name.starts_with("POLYSCALE_") {
            cmd.env_remove(name);
        }
    }
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.output().expect("polyscale runs")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn refused(o: &Output) -> String {
    assert!(!o.status.success(), "accepted: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn key(printed: &str, section: &str, key: &str) -> String {
    let table: toml::Table = printed.parse().expect("config prints TOML");
    let value = if section.is_empty() { &table[key] } else { &table[section][key] };
    value.to_string()
}

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("polyscale.toml"),
        "[runtime]\ncall_timeout = \"7s\"\nmax_concurrent_instances = 64\n\n[gateway]\nmax_depth = 9\n",
    )
    .unwrap();
    let file = ["config", "--config", "polyscale.toml"];

    let from_file = stdout(&polyscale(&file, &[], dir.path()));
    assert_eq!(key(&from_file, "runtime", "call_timeout"), "\"7s\"");
    assert_eq!(key(&from_file, "runtime", "max_concurrent_instances"), "64");
    assert_eq!(key(&from_file, "gateway", "max_depth"), "9");
    assert_eq!(key(&from_file, "gateway", "max_aliases"), "30", "defaults fill what the file leaves out");

    let env = [("POLYSCALE_RUNTIME__CALL_TIMEOUT", "5s"), ("POLYSCALE_GATEWAY__MAX_DEPTH", "8")];
    let from_env = stdout(&polyscale(&file, &env, dir.path()));
    assert_eq!(key(&from_env, "runtime", "call_timeout"), "\"5s\"", "the environment overrides the file");
    assert_eq!(key(&from_env, "runtime", "max_concurrent_instances"), "64");

    let mut with_flags = file.to_vec();
    with_flags.extend(["--set", "runtime.call_timeout=3s", "--listen", "127.0.0.1:9999"]);
    let from_flags = stdout(&polyscale(&with_flags, &env, dir.path()));
    assert_eq!(key(&from_flags, "runtime", "call_timeout"), "\"3s\"", "flags override the environment");
    assert_eq!(key(&from_flags, "gateway", "max_depth"), "8");
    assert_eq!(key(&from_flags, "", "listen"), "\"127.0.0.1:9999\"");

    // The flat variable names of earlier releases still work.
    let legacy = stdout(&polyscale(&["config"], &[("POLYSCALE_PRODUCT_DATABASE_URL", "postgres://u@h/p")], dir.path()));
    assert_eq!(key(&legacy, "product", "database_url"), "\"postgres://u@h/p\"");
}

#[test]
fn secrets_are_redacted_when_printed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("POLYSCALE_ACCOUNT__CREDENTIALS_DATABASE_URL", "postgres://app:hunter2@db/credentials")];
    let printed = stdout(&polyscale(&["config"], &env, dir.path()));
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("postgres://app:***@db/credentials"), "{printed}");
}

#[test]
fn bad_configurations_fail_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |file: &str, env: &[(&str, &str)]| {
        std::fs::write(dir.path().join("bad.toml"), file).unwrap();
        refused(&polyscale(
            &["serve", "--config", "bad.toml", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"],
            env,
            dir.path(),
        ))
    };

    let unknown = serve("[runtime]\ncall_timeuot = \"5s\"\n", &[]);
    assert!(unknown.contains("call_timeuot"), "{unknown}");

    let bad_value = serve("[runtime]\nmax_concurrent_instances = \"many\"\n", &[]);
    assert!(bad_value.contains("max_concurrent_instances"), "{bad_value}");

    let bad_duration = serve("", &[("POLYSCALE_RUNTIME__CALL_TIMEOUT", "soon")]);
    assert!(bad_duration.to_lowercase().contains("runtime.call_timeout"), "{bad_duration}");

    let missing = serve("[product.search]\nengine = \"elasticsearch\"\n", &[]);
    assert!(missing.contains("product.search.url"), "{missing}");

    let out_of_range = serve("[gateway]\nmax_page_size = 0\n", &[]);
    assert!(out_of_range.contains("gateway.max_page_size"), "{out_of_range}");

    let no_connections = serve("[gateway]\nmax_connections = 0\n", &[]);
    assert!(no_connections.contains("gateway.max_connections"), "{no_connections}");

    let bad_metrics = serve("metrics_listen = \"nowhere\"\n", &[]);
    assert!(bad_metrics.contains("metrics_listen"), "{bad_metrics}");

    let no_secret = serve("[payments.test]\nenabled = true\nwebhook_secret_file = \"missing-secret\"\n", &[]);
    assert!(no_secret.contains("payments.test.webhook_secret_file"), "{no_secret}");
    std::fs::write(dir.path().join("short-secret"), "too short").unwrap();
    let short = serve("[payments.test]\nenabled = true\nwebhook_secret_file = \"short-secret\"\n", &[]);
    assert!(short.contains("at least 16"), "{short}");

    let bad_service = serve("", &[("POLYSCALE_SERVICES__PRODUCT", "dns:///product.svc")]);
    assert!(bad_service.contains("services.product") && bad_service.contains("host:port"), "{bad_service}");
    let not_a_url = serve("", &[("POLYSCALE_SERVICES__ORDER", "product:50051")]);
    assert!(not_a_url.contains("services.order"), "{not_a_url}");

    let bad_collector = serve("", &[("POLYSCALE_TELEMETRY__OTLP_ENDPOINT", "collector:4317")]);
    assert!(bad_collector.contains("telemetry.otlp_endpoint"), "{bad_collector}");
    let bad_format = serve("[telemetry]\nlog_format = \"xml\"\n", &[]);
    assert!(bad_format.contains("log_format"), "{bad_format}");

    let unknown_env = serve("", &[("POLYSCALE_RUNTIME__NOPE", "1")]);
    assert!(unknown_env.to_lowercase().contains("nope"), "{unknown_env}");

    // Nothing was started: no data directory was made.
    assert!(!dir.path().join("data").exists());
}

/// The edge keys: their defaults, `metrics_listen = "off"`, and the key of
/// earlier releases, `gateway.trust_forwarded_for = true`, read as one
/// trusted proxy hop.
#[test]
fn edge_keys_and_the_old_forwarded_for_key() {
    let dir = tempfile::tempdir().unwrap();
    let defaults = stdout(&polyscale(&["config"], &[], dir.path()));
    assert_eq!(key(&defaults, "", "metrics_listen"), "\"127.0.0.1:9464\"");
    assert_eq!(key(&defaults, "gateway", "trusted_proxy_hops"), "0");
    assert_eq!(key(&defaults, "gateway", "introspection"), "true");
    assert_eq!(key(&defaults, "gateway", "header_read_timeout"), "\"10s\"");
    assert_eq!(key(&defaults, "gateway", "max_connections"), "1024");
    let table: toml::Table = defaults.parse().unwrap();
    assert_eq!(table["gateway"]["rate_limit"]["auth_per_minute"].as_integer(), Some(60));
    assert!(!defaults.contains("trust_forwarded_for"), "{defaults}");

    let old = stdout(&polyscale(&["config", "--set", "gateway.trust_forwarded_for=true"], &[], dir.path()));
    assert_eq!(key(&old, "gateway", "trusted_proxy_hops"), "1");
    assert!(!old.contains("trust_forwarded_for"), "{old}");
    let flag = stdout(&polyscale(&["config", "--trust-forwarded-for"], &[], dir.path()));
    assert_eq!(key(&flag, "gateway", "trusted_proxy_hops"), "1");
    let hops = stdout(&polyscale(
        &["config", "--trusted-proxy-hops", "2"],
        &[("POLYSCALE_METRICS_LISTEN", "off")],
        dir.path(),
    ));
    assert_eq!(key(&hops, "gateway", "trusted_proxy_hops"), "2");
    assert_eq!(key(&hops, "", "metrics_listen"), "\"off\"");
}
