//! GraphiQL served from the binary: the bundles vendored in
//! `gateway/assets/graphiql/` (its README says which npm packages, which
//! versions and how they were fetched), embedded with `include_bytes!`.
//! Nothing is loaded from another origin, so GraphiQL works without
//! internet access and no third-party script host is trusted.
//!
//! The files are served under `/graphiql/<digest>/<name>`, the digest
//! covering all of them, and cached for a year: a build with different
//! files has different URLs. The page, served at the GraphQL endpoint to a
//! browser asking for HTML, carries a Content-Security-Policy that lets
//! scripts come from this origin only (no inline script, no `eval`) and
//! lets the page connect to this origin only.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// Where the files are served; the page refers to them relative to the
/// GraphQL endpoint (`/graphql` → `/graphiql/…`), so a proxy that mounts
/// the gateway under a prefix keeps them working.
const PREFIX: &str = "graphiql";

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset { name: $name, content_type: $content_type, body: include_bytes!(concat!("../assets/graphiql/", $name)) }
    };
}

/// Every file the page loads, in the order it loads the scripts.
const ASSETS: &[Asset] = &[
    asset!("graphiql.min.css", CSS),
    asset!("page.css", CSS),
    asset!("react.production.min.js", JS),
    asset!("react-dom.production.min.js", JS),
    asset!("graphiql.min.js", JS),
    asset!("init.js", JS),
];

/// SHA-256 over every file (names and contents), 16 hex digits.
static DIGEST: LazyLock<String> = LazyLock::new(|| {
    let mut hasher = Sha256::new();
    for asset in ASSETS {
        hasher.update(asset.name.as_bytes());
        hasher.update((asset.body.len() as u64).to_le_bytes());
        hasher.update(asset.body);
    }
    hex::encode(&hasher.finalize()[..8])
});

/// The policy of the page. `nonce` admits the one `<style>` element
/// GraphiQL's dialogs add at run time (`init.js` hands it over).
fn content_security_policy(nonce: &str) -> String {
    [
        "default-src 'none'",
        "script-src 'self'",
        &format!("style-src 'self' 'nonce-{nonce}'"),
        // GraphiQL's CSS embeds its fonts and a few images as data: URLs.
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    .join("; ")
}

/// The routes serving the files.
pub(crate) fn routes() -> Router {
    Router::new().route(&format!("/{PREFIX}/{{digest}}/{{name}}"), get(asset))
}

async fn asset(Path((digest, name)): Path<(String, String)>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name).filter(|_| digest == *DIGEST) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut response = Response::new(Body::from(asset.body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The GraphiQL page, with its policy.
pub(crate) fn page() -> Response {
    let mut bytes = [0u8; 16];
    if let Err(e) = getrandom::fill(&mut bytes) {
        tracing::error!(error = %e, "no randomness for the GraphiQL page's nonce");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    let nonce = hex::encode(bytes);
    let url = |name: &str| format!("{PREFIX}/{}/{name}", *DIGEST);
    let mut head = String::new();
    let mut scripts = String::new();
    for asset in ASSETS {
        if asset.content_type == CSS {
            head.push_str(&format!("    <link rel=\"stylesheet\" href=\"{}\">\n", url(asset.name)));
        } else if asset.name == "init.js" {
            scripts.push_str(&format!("    <script src=\"{}\" nonce=\"{nonce}\"></script>\n", url(asset.name)));
        } else {
            scripts.push_str(&format!("    <script src=\"{}\"></script>\n", url(asset.name)));
        }
    }
    let html = format!(
        "<!DOCTYPE html>
<html lang=\"en\">
  <head>
    <meta charset=\"utf-8\">
    <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
    <meta name=\"referrer\" content=\"no-referrer\">
    <title>PolyScale GraphiQL</title>
    <link rel=\"icon\" href=\"data:,\">
{head}  </head>
  <body>
    <div id=\"graphiql\">Loading…</div>
    <noscript>GraphiQL needs JavaScript.</noscript>
{scripts}  </body>
</html>
"
    );
    let mut response = Response::new(Body::from(html));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // The nonce is new for every response.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    match HeaderValue::from_str(&content_security_policy(&nonce)) {
        Ok(policy) => {
            headers.insert(header::CONTENT_SECURITY_POLICY, policy);
            response
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(response: Response) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_page_loads_every_file_from_this_origin_under_its_policy() {
        let first = page();
        let policy = first.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert!(policy.contains("script-src 'self';"), "{policy}");
        assert!(!policy.contains("unsafe"), "{policy}");
        let html = body(first).await;
        assert!(!html.contains("http:") && !html.contains("https:") && !html.contains("//"), "{html}");
        for asset in ASSETS {
            assert!(
                html.contains(&format!("\"graphiql/{}/{}\"", *DIGEST, asset.name)),
                "{} missing: {html}",
                asset.name
            );
        }
        // No inline script: every <script> has a src.
        assert_eq!(html.matches("<script").count(), html.matches("<script src=").count());
        // The nonce is in the policy and on init.js, and new every time.
        let nonce = policy.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
        assert!(html.contains(&format!("init.js\" nonce=\"{nonce}\"")));
        let again = page().headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert_ne!(policy, again);
    }

    #[tokio::test]
    async fn files_are_served_only_under_the_current_digest() {
        let ok = asset(Path((DIGEST.clone(), "init.js".into()))).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_TYPE], JS);
        assert!(ok.headers()[header::CACHE_CONTROL].to_str().unwrap().contains("immutable"));
        assert!(body(ok).await.contains("GraphiQL.createFetcher"));
        let css = asset(Path((DIGEST.clone(), "graphiql.min.css".into()))).await;
        assert_eq!(css.headers()[header::CONTENT_TYPE], CSS);
        let stale = asset(Path(("0000000000000000".into(), "init.js".into()))).await;
        assert_eq!(stale.status(), StatusCode::NOT_FOUND);
        let unknown = asset(Path((DIGEST.clone(), "../Cargo.toml".into()))).await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    }
}
