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
    let mut child = Command::new(env!("CARGO_BIN_EXE_polyscale"))
        .args(["serve", "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0"])
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

fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
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

#[tokio::test]
async fn serve_with_defaults_runs_the_system_with_sample_data() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _log) = serve(dir.path());
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

    let status = interrupt(&mut child);
    assert!(status.success(), "Ctrl-C stops polyscale cleanly: {status}");

    // A second start reuses the data directory and does not load the
    // sample data again.
    let (mut child, url, _log) = serve(dir.path());
    let body: Value = http.post(&url).json(&query).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["data"]["products"]["totalCount"].as_i64().unwrap(), total, "{body}");
    assert!(interrupt(&mut child).success());
}
