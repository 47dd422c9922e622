//! Channels to a service's replicas.
//!
//! A service URL is either fixed (`http://10.0.0.5:50051`) or a DNS name
//! to follow (`dns:///product.polyscale.svc:50051`, the gRPC name syntax):
//! the name is resolved now and every [`DNS_REFRESH`], and the channel
//! balances over every address it has, adding and dropping replicas as the
//! answer changes. That is what a Kubernetes headless Service needs: a
//! `ClusterIP` would send all of one client's calls, multiplexed on one
//! HTTP/2 connection, to whichever pod that connection reached, and pods
//! added by an autoscaler would get no calls from clients already running.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tonic::transport::channel::Change;
use tonic::transport::{Channel, Endpoint};

/// How often a `dns:///` name is resolved again.
pub const DNS_REFRESH: Duration = Duration::from_secs(5);

/// The scheme of a name to follow.
const DNS: &str = "dns:///";

/// Why a service URL cannot be used.
#[derive(Debug)]
pub struct InvalidEndpoint {
    pub endpoint: String,
    pub reason: String,
}

impl std::fmt::Display for InvalidEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid service endpoint `{}`: {}", self.endpoint, self.reason)
    }
}

impl std::error::Error for InvalidEndpoint {}

/// A channel to a service at `urls`: one URL, or its replicas, over which
/// calls are balanced (power of two choices over the connected ones; a
/// replica that is down is skipped until it is back). `dns:///host:port`
/// URLs are followed (see the module docs); they need a Tokio runtime.
/// Connections open on first use and reopen after a restart; no socket
/// waits on Nagle's algorithm. `timeout`, if any, bounds every call.
pub fn lazy(urls: &[String], timeout: Option<Duration>) -> Result<Channel, InvalidEndpoint> {
    following(urls, timeout, DNS_REFRESH, |host, port| async move {
        tokio::net::lookup_host((host.as_str(), port)).await.map(|addrs| addrs.collect())
    })
}

/// [`lazy`] with the resolver and its period given (tests resolve names
/// their own way).
pub fn following<L, F>(
    urls: &[String],
    timeout: Option<Duration>,
    every: Duration,
    lookup: L,
) -> Result<Channel, InvalidEndpoint>
where
    L: Fn(String, u16) -> F + Send + 'static,
    F: Future<Output = io::Result<Vec<SocketAddr>>> + Send,
{
    let mut fixed = Vec::new();
    let mut names = Vec::new();
    for url in urls {
        match url.strip_prefix(DNS) {
            Some(authority) => names.push(name(url, authority)?),
            None => fixed.push(endpoint(url, timeout)?),
        }
    }
    if names.is_empty() {
        return match fixed.as_slice() {
            [] => Err(InvalidEndpoint { endpoint: String::new(), reason: "no URL given".into() }),
            [one] => Ok(one.clone().connect_lazy()),
            _ => Ok(Channel::balance_list(fixed.into_iter())),
        };
    }
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| InvalidEndpoint {
        endpoint: urls.join(","),
        reason: "a dns:/// URL is followed by a task: start it inside a Tokio runtime".into(),
    })?;
    let (channel, changes) = Channel::balance_channel::<String>(64);
    runtime.spawn(async move {
        for (i, endpoint) in fixed.into_iter().enumerate() {
            if changes.send(Change::Insert(format!("fixed-{i}"), endpoint)).await.is_err() {
                return;
            }
        }
        // Per name, the addresses the channel holds.
        let mut held: HashMap<(String, u16), BTreeSet<SocketAddr>> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for (host, port) in &names {
                let now: BTreeSet<SocketAddr> = match lookup(host.clone(), *port).await {
                    Ok(addrs) => addrs.into_iter().collect(),
                    Err(error) => {
                        // Keep what was there: a resolver hiccup must not
                        // drop every replica.
                        tracing::warn!(%host, %error, "resolving a service name failed; keeping its last addresses");
                        continue;
                    }
                };
                let before = held.entry((host.clone(), *port)).or_default();
                if now.is_empty() && !before.is_empty() {
                    tracing::warn!(%host, "a service name resolved to no address; keeping its last addresses");
                    continue;
                }
                let key = |addr: &SocketAddr| format!("{host}|{addr}");
                for gone in before.difference(&now) {
                    if changes.send(Change::Remove(key(gone))).await.is_err() {
                        return;
                    }
                }
                for new in now.difference(before) {
                    let Ok(endpoint) = endpoint(&format!("http://{new}"), timeout) else { continue };
                    if changes.send(Change::Insert(key(new), endpoint)).await.is_err() {
                        return;
                    }
                }
                if *before != now {
                    tracing::info!(%host, replicas = now.len(), "service replicas changed");
                }
                *before = now;
            }
            // Every channel dropped: nobody to resolve for.
            if changes.is_closed() {
                return;
            }
        }
    });
    Ok(channel)
}

/// Whether `url` is a service URL [`lazy`] takes: `http://`, `https://`
/// or `dns:///host:port`.
pub fn check(url: &str) -> Result<(), InvalidEndpoint> {
    match url.strip_prefix(DNS) {
        Some(authority) => name(url, authority).map(drop),
        None if url.starts_with("http://") || url.starts_with("https://") => endpoint(url, None).map(drop),
        None => Err(InvalidEndpoint {
            endpoint: url.to_string(),
            reason: "expected an http://, https:// or dns:///host:port URL".into(),
        }),
    }
}

/// `host:port` of a `dns:///` URL.
fn name(url: &str, authority: &str) -> Result<(String, u16), InvalidEndpoint> {
    let invalid = |reason: &str| InvalidEndpoint { endpoint: url.to_string(), reason: reason.to_string() };
    let (host, port) =
        authority.rsplit_once(':').ok_or_else(|| invalid("a dns:/// URL needs a port: dns:///host:port"))?;
    let port = port.parse::<u16>().map_err(|_| invalid("the port is not a number"))?;
    if host.is_empty() || host.contains('/') {
        return Err(invalid("expected dns:///host:port"));
    }
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

fn endpoint(url: &str, timeout: Option<Duration>) -> Result<Endpoint, InvalidEndpoint> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| InvalidEndpoint { endpoint: url.to_string(), reason: e.to_string() })?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(20))
        .keep_alive_timeout(Duration::from_secs(10));
    Ok(match timeout {
        Some(t) => endpoint.timeout(t),
        None => endpoint,
    })
}

#[cfg(test)]
mod tests {
    use super::name;

    #[test]
    fn dns_names_need_host_and_port() {
        assert_eq!(name("u", "product.svc:50051").unwrap(), ("product.svc".to_string(), 50051));
        assert_eq!(name("u", "[::1]:7").unwrap(), ("::1".to_string(), 7));
        assert!(name("u", "product.svc").is_err());
        assert!(name("u", "product.svc:http").is_err());
        assert!(name("u", ":50051").is_err());
        assert!(name("u", "a/b:1").is_err());
    }
}
