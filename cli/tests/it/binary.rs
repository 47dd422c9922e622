//! The `polyscale` binary itself, run as the README says: `serve` with
//! every default (a relative `./data` in the working directory, sample data
//! on first start), then stopped with Ctrl-C.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

/// Runs `polyscale serve` in `dir` on free ports until its GraphQL address
/// is logged, and returns the child and that address.
fn serve(dir: &std::path::Path) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    serve_with(dir, &[])
}

pub(crate) fn serve_with(
    dir: &std::path::Path,
    extra: &[&str],
) -> (std::process::Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_polyscale"))
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
        .args(extra)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .env_remove("POLYSCALE_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("polyscale starts");
    let (lines, log) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = log.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no GraphQL address logged; the log was:\n{}", seen.join("\n"));
        };
        if let Some(rest) = line.split("GraphQL at ").nth(1) {
            let url = rest.split_whitespace().next().unwrap().to_string();
            return (child, url, log);
        }
        seen.push(line);
    }
}

pub(crate) fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("polyscale did not stop within 30 s of Ctrl-C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_with_defaults_runs_the_system_with_sample_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, log) = serve(dir.path());
    let http = reqwest::Client::new();
    let query = json!({ "query": "{ products(first: 5) { totalCount edges { node { name } } } }" });
    // The sample catalog loads just after the server starts listening.
    let mut total = 0;
    for _ in 0..300 {
        let body: Value = http.post(&url).json(&query).send().await.unwrap().json().await.unwrap();
        assert!(body.get("errors").is_none(), "{body}");
        total = body["data"]["products"]["totalCount"].as_i64().unwrap();
        if total > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(total > 0, "the sample catalog never appeared");

    let data = dir.path().join("data");
    assert!(data.join("sample-accounts.txt").is_file(), "sample accounts are kept in ./data");
    assert!(data.join("product.db").is_file());
    assert!(data.join("keys").join("token-signing-key.pem").is_file());

    // Secrets are owner-only from creation, and sample passwords stay in
    // their file, out of the log.
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: std::path::PathBuf| std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(data.clone()), 0o700);
    assert_eq!(mode(data.join("cache")), 0o700);
    for file in ["credentials.db", "credentials.db-wal", "credentials.db-shm", "sample-accounts.txt"] {
        if data.join(file).exists() || !file.contains('-') {
            assert_eq!(mode(data.join(file)), 0o600, "{file}");
        }
    }
    let accounts = std::fs::read_to_string(data.join("sample-accounts.txt")).unwrap();
    let passwords: Vec<&str> = accounts.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(!passwords.is_empty(), "{accounts}");
    let logged: Vec<String> = log.try_iter().collect();
    for password in &passwords {
        assert!(!logged.iter().any(|l| l.contains(password)), "a sample password was logged");
    }

    let status = interrupt(&mut child);
    assert!(status.success(), "Ctrl-C stops polyscale cleanly: {status}");

    // A second start reuses the data directory and does not load the
    // sample data again.
    let (mut child, url, _log) = serve(dir.path());
    let body: Value = http.post(&url).json(&query).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["products"]["totalCount"].as_i64().unwrap(), total, "{body}");
    assert!(interrupt(&mut child).success());
}

/// The data plane's and the admin plane's addresses, from the log line
/// that follows the GraphQL one.
fn planes(log: &std::sync::mpsc::Receiver<String>) -> (String, String) {
    loop {
        let line = log.recv_timeout(Duration::from_secs(60)).expect("the gRPC addresses are logged");
        if let Some(rest) = line.split("(gRPC) at ").nth(1) {
            let grpc = format!("http://{}", rest.split(';').next().unwrap().trim());
            let admin = rest.split("admin plane at ").nth(1).expect("the admin address").split_whitespace().next();
            return (grpc, admin.unwrap().to_string());
        }
    }
}

/// A TCP admin plane answers only calls that carry the operator token:
/// none or a wrong one is refused (the command exits non-zero with
/// UNAUTHENTICATED), the right one works; and the data plane's port does
/// not serve the admin services at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tcp_admin_plane_needs_the_operator_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("operator-token");
    std::fs::write(&token, format!("{}\n", "t0ken".repeat(8))).unwrap();
    let wrong = dir.path().join("wrong-token");
    std::fs::write(&wrong, "w".repeat(40)).unwrap();
    let listen = "admin.listen=127.0.0.1:0".to_string();
    let token_file = format!("admin.token_file={}", token.display());
    let (mut child, _url, log) = serve_with(dir.path(), &["--no-sample-data", "--set", &listen, "--set", &token_file]);
    let (grpc, admin) = planes(&log);
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");

    let (ok, _, err) = polyscale(&["component", "list", "--admin", &admin]).await;
    assert!(!ok && err.contains("operator token"), "no token: {err}");
    let (ok, _, err) =
        polyscale(&["component", "list", "--admin", &admin, "--admin-token-file", wrong.to_str().unwrap()]).await;
    assert!(!ok && err.contains("operator token"), "a wrong token: {err}");
    let (ok, out, err) =
        polyscale(&["component", "list", "--admin", &admin, "--admin-token-file", token.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert!(out.trim_end().ends_with("(active)"), "{out}");

    // The data plane is no way in, with or without the token.
    let (ok, _, err) =
        polyscale(&["component", "list", "--admin", &grpc, "--admin-token-file", token.to_str().unwrap()]).await;
    assert!(!ok && err.to_lowercase().contains("unimplemented"), "{err}");
    assert!(interrupt(&mut child).success());
}

/// Runs `polyscale <args>` to completion (at most two minutes); returns
/// whether it succeeded, its stdout and its stderr.
async fn polyscale(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let run = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_polyscale"))
            .args(&args)
            .env("NO_COLOR", "1")
            .env_remove("POLYSCALE_ADMIN")
            .output()
            .expect("polyscale runs")
    });
    let output = tokio::time::timeout(Duration::from_secs(120), run).await.expect("the command finished").unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

/// The operating commands of the README, run as the real binary against a
/// running `serve`: component list/deploy/activate, accounts grant, seed,
/// reindex, and a refused activation exiting non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operating_commands_work_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, log) = serve_with(dir.path(), &["--no-sample-data"]);
    let (grpc, admin) = planes(&log);
    // The embedded admin plane is the data directory's socket (logged
    // relative to the server's directory), this user's only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(admin, "unix:./data/admin.sock");
    let socket = dir.path().join("data").join("admin.sock");
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(dir.path().join("data")).unwrap().permissions().mode() & 0o777, 0o700);
    let admin = format!("unix:{}", socket.display());
    let admin = admin.as_str();
    let http = reqwest::Client::new();
    let graphql = |query: Value| {
        let (http, url) = (http.clone(), url.clone());
        async move { http.post(&url).json(&query).send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // component list: the built-in version, active.
    let (ok, out, err) = polyscale(&["component", "list", "--admin", admin]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("embedded") && lines[0].ends_with("(active)"), "{out}");
    let builtin = lines[0].split_whitespace().next().unwrap().to_string();

    // component deploy FILE: a new version, active.
    let file = dir.path().join("product-v2.wasm");
    std::fs::write(&file, crate::app::variant(polyscale_host::components::PRODUCT, "binary-test")).unwrap();
    let (ok, out, err) = polyscale(&["component", "deploy", file.to_str().unwrap(), "--admin", admin]).await;
    assert!(ok, "{err}");
    assert!(out.contains("deployed") && out.trim_end().ends_with("(active)"), "{out}");
    let deployed = out.split_whitespace().next().unwrap().to_string();
    assert_ne!(deployed, builtin);
    let (_, out, _) = polyscale(&["component", "list", "--admin", admin]).await;
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().any(|l| l.starts_with(&deployed) && l.ends_with("(active)")), "{out}");

    // component activate VERSION: back to the built-in one.
    let (ok, out, err) = polyscale(&["component", "activate", &builtin, "--admin", admin]).await;
    assert!(ok, "{err}");
    assert!(out.starts_with(&builtin) && out.trim_end().ends_with("(active)"), "{out}");
    let (_, out, _) = polyscale(&["component", "list", "--admin", admin]).await;
    assert!(out.lines().any(|l| l.starts_with(&builtin) && l.ends_with("(active)")), "{out}");
    assert!(out.lines().any(|l| l.starts_with(&deployed) && !l.ends_with("(active)")), "{out}");
    // A refused command exits non-zero and says why.
    let (ok, _, err) = polyscale(&["component", "activate", "0000", "--admin", admin]).await;
    assert!(!ok);
    assert!(err.contains("activation refused"), "{err}");

    // accounts grant: an admin, as the login then shows.
    let register = json!({ "query": "mutation { register(input: { email: \"ops@example.com\", password: \"correct horse battery staple\", displayName: \"Ops\" }) { userErrors { code } } }" });
    assert_eq!(graphql(register).await["data"]["register"]["userErrors"], json!([]));
    let (ok, out, err) =
        polyscale(&["accounts", "grant", "--email", "ops@example.com", "--role", "admin", "--admin", admin]).await;
    assert!(ok, "{err}");
    assert!(out.contains("ops@example.com") && out.contains("is now admin"), "{out}");
    let login = json!({ "query": "mutation { login(input: { email: \"ops@example.com\", password: \"correct horse battery staple\" }) { account { roles } } }" });
    let roles = graphql(login).await["data"]["login"]["account"]["roles"].clone();
    assert!(roles.as_array().unwrap().contains(&json!("ADMIN")), "{roles}");
    let (ok, _, err) =
        polyscale(&["accounts", "grant", "--email", "nobody@example.com", "--role", "admin", "--admin", admin]).await;
    assert!(!ok, "granting to an unknown email must fail");
    assert!(err.contains("refused"), "{err}");

    // seed: the products arrive.
    let (ok, out, err) =
        polyscale(&["seed", "--products", "30", "--merchants", "2", "--admin", admin, "--grpc", &grpc]).await;
    assert!(ok, "{err}");
    assert!(out.contains("30 products"), "{out}");
    let total = graphql(json!({ "query": "{ products { totalCount } }" })).await;
    assert_eq!(total["data"]["products"]["totalCount"], 30, "{total}");

    // reindex: every document, from the database.
    let (ok, out, err) = polyscale(&["reindex", "--admin", admin]).await;
    assert!(ok, "{err}");
    assert!(out.contains("products: 30 documents indexed"), "{out}");
    let searched = graphql(json!({ "query": "{ products(sort: NEWEST) { totalCount } }" })).await;
    assert_eq!(searched["data"]["products"]["totalCount"], 30, "{searched}");

    assert!(interrupt(&mut child).success());
}
