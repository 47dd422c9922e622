//! GraphiQL as a browser gets it: served from the binary under a strict
//! Content-Security-Policy, loading nothing from another origin, working in
//! a browser that can reach nothing but the server, and gone when
//! `gateway.graphiql = false`.
//!
//! The browser is headless Chromium (Debian's `chromium` package; .ci/run
//! installs it), or the binary named by `POLYSCALE_CHROMIUM`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;

use crate::app::{Backend, TestApp};
use crate::binary::{interrupt, serve_with};

/// GETs `url` as a browser does; returns the response.
async fn browse(client: &reqwest::Client, url: &str) -> reqwest::Response {
    client.get(url).header("accept", "text/html,application/xhtml+xml,*/*;q=0.8").send().await.unwrap()
}

/// The values of every `src="…"` and `href="…"` attribute in `html`.
fn references(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for piece in html.split(attribute).skip(1) {
            found.push(piece.split('"').next().unwrap().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_graphiql_page_names_no_other_origin_and_carries_a_strict_policy() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = browse(&app.client, &app.url()).await;
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    let policy = headers.get("content-security-policy").expect("a Content-Security-Policy header").to_str().unwrap();
    let directive = |name: &str| -> Vec<String> {
        let found = policy.split(';').map(str::trim).find(|d| d.split_whitespace().next() == Some(name));
        let found = found.unwrap_or_else(|| panic!("no {name} in {policy}"));
        found.split_whitespace().skip(1).map(str::to_string).collect()
    };
    assert_eq!(directive("default-src"), ["'none'"]);
    assert_eq!(directive("script-src"), ["'self'"], "scripts from this origin only: {policy}");
    assert_eq!(directive("connect-src"), ["'self'"]);
    assert_eq!(directive("frame-ancestors"), ["'none'"]);
    assert!(!policy.contains("unsafe"), "no 'unsafe-inline' or 'unsafe-eval': {policy}");
    assert!(!policy.contains("http:") && !policy.contains("https:") && !policy.contains('*'), "{policy}");

    let html = response.text().await.unwrap();
    assert!(!html.contains("http://") && !html.contains("https://"), "the page names another origin:\n{html}");
    assert!(!html.contains("//"), "no protocol-relative URL either:\n{html}");
    assert_eq!(html.matches("<script").count(), html.matches("<script src=").count(), "no inline script:\n{html}");

    // Every file the page loads comes from this server, cached for good,
    // with its proper type.
    let page = Url::parse(&app.url()).unwrap();
    let files = references(&html);
    let kinds = |suffix: &str| files.iter().filter(|f| f.ends_with(suffix)).count();
    assert_eq!((kinds(".js"), kinds(".css")), (4, 2), "{files:?}");
    for file in files.iter().filter(|f| !f.starts_with("data:")) {
        let url = page.join(file).unwrap();
        assert_eq!(url.origin(), page.origin(), "{file}");
        assert!(url.path().starts_with("/graphiql/"), "{url}");
        let response = app.client.get(url.clone()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{url}");
        let expected = if file.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(response.headers()["content-type"], expected, "{url}");
        assert_eq!(response.headers()["cache-control"], "public, max-age=31536000, immutable", "{url}");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff", "{url}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{url}");
    }

    // A file under another digest (another build's) or not ours is not served.
    let script = files.iter().find(|f| f.ends_with("init.js")).unwrap();
    let digest = script.split('/').nth(1).unwrap();
    for path in [script.replace(digest, "0123456789abcdef"), format!("graphiql/{digest}/Cargo.toml")] {
        let response = app.client.get(page.join(&path).unwrap()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
    }
}

/// GraphiQL loads the schema with the standard introspection query, whose
/// type references nest `ofType` nine deep: within the default limits,
/// since `ofType` does not count toward `gateway.max_depth`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphiqls_introspection_query_is_within_the_limits() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let query = include_str!("graphiql_introspection.graphql");
    let (status, body) = app.post(serde_json::json!({ "query": query, "operationName": "IntrospectionQuery" })).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    let schema = &body["data"]["__schema"];
    assert_eq!(schema["queryType"]["name"], "Query");
    assert_eq!(schema["mutationType"]["name"], "Mutation");
    let types = schema["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Product"), "{schema}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphiql_switched_off_by_configuration_is_not_served() {
    // Where the files are when GraphiQL is on (the same build, the same URLs).
    let on = TestApp::spawn(Backend::Sqlite).await;
    let html = browse(&on.client, &on.url()).await.text().await.unwrap();
    let script = references(&html).into_iter().find(|f| f.ends_with("init.js")).expect("init.js on the page");
    drop(on);

    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _log) = serve_with(dir.path(), &["--no-sample-data", "--set", "gateway.graphiql=false"]);
    let client = reqwest::Client::new();
    let response = browse(&client, &url).await;
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    let body = response.text().await.unwrap();
    assert_eq!(status, 400, "a GraphQL GET without a query: {body}");
    assert!(!content_type.contains("html"), "{content_type}");
    assert!(!body.to_lowercase().contains("graphiql") && !body.contains("<script"), "{body}");
    let file = Url::parse(&url).unwrap().join(&script).unwrap();
    assert_eq!(client.get(file.clone()).send().await.unwrap().status().as_u16(), 404, "{file}");
    // Queries still work.
    let response = client.get(&url).query(&[("query", "{ products { totalCount } }")]).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(interrupt(&mut child).success());
}

/// The Chromium binary: `POLYSCALE_CHROMIUM`, or `chromium` on the `PATH`.
fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("POLYSCALE_CHROMIUM") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to test GraphiQL in a browser and none was found: install Debian's \
                 `chromium` package (`apt-get install chromium`, as .ci/run does) or set POLYSCALE_CHROMIUM to a \
                 Chromium binary"
            )
        })
}

/// Runs headless Chromium on `url` with `args`, reaching nothing but
/// 127.0.0.1: every other host goes to a proxy that is not there and
/// resolves to nothing. Returns stdout and stderr.
async fn headless_chromium(profile: &Path, args: &[String], url: &str) -> (String, String) {
    let mut command = tokio::process::Command::new(chromium());
    command
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=127.0.0.1",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            // Console messages (CSP violations among them) go to stderr.
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,800",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("Chromium finished within 2 minutes")
        .unwrap_or_else(|e| panic!("running {}: {e}", chromium().display()));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "Chromium failed ({}):\n{stderr}", output.status);
    (stdout, stderr)
}

/// The browser's console complaints about the page's policy.
fn policy_violations(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains("Content Security Policy") || l.contains("Refused to")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphiql_works_in_headless_chromium_without_network() {
    let chromium = chromium();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, _log) = serve_with(dir.path(), &["--no-sample-data"]);
    let profile = tempfile::tempdir().unwrap();

    // The DOM once the page has loaded: GraphiQL rendered its editors
    // (CodeMirror), replacing the "Loading…" placeholder, and loaded the
    // schema over `connect-src 'self'` (a failure fills the result pane:
    // "Failed to fetch", or the server's `errors`; it stays empty).
    let (dom, stderr) = headless_chromium(profile.path(), &["--dump-dom".into()], &url).await;
    let context = || format!("{} on {url}; the DOM:\n{dom}\nstderr:\n{stderr}", chromium.display());
    assert!(dom.contains("graphiql-container"), "no GraphiQL container: {}", context());
    assert!(dom.contains("graphiql-query-editor") && dom.contains("CodeMirror"), "no query editor: {}", context());
    assert!(!dom.contains("Loading…"), "GraphiQL never started: {}", context());
    let result_pane =
        dom.split("class=\"result-window\"").nth(1).unwrap_or_else(|| panic!("no result pane: {}", context()));
    for failure in ["Failed to fetch", "errors", "QUERY_TOO_COMPLEX", "cm-property"] {
        assert!(!result_pane.contains(failure), "the schema did not load ({failure}): {}", context());
    }
    assert!(policy_violations(&stderr).is_empty(), "the page broke its own policy: {:?}", policy_violations(&stderr));

    // A picture of it, for a person to look at.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("graphiql");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("graphiql.png");
    let _ = std::fs::remove_file(&shot);
    let (_, stderr) = headless_chromium(profile.path(), &[format!("--screenshot={}", shot.display())], &url).await;
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot at {}: {e}\n{stderr}", shot.display()));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{} is not a PNG", shot.display());
    // A blank 1280×800 page compresses to a few kilobytes; GraphiQL's
    // editors and text do not.
    assert!(png.len() > 20_000, "{} is {} bytes: a blank page?", shot.display(), png.len());
    println!("GraphiQL screenshot: {}", shot.display());

    assert!(interrupt(&mut child).success());
}
