//! Rate limits per client address on what is expensive to serve or worth
//! guessing at: the mutations that check a password or a token, product
//! searches, and plugin uploads and dry runs.
//!
//! Each class is a keyed GCRA limiter (`governor`): a sustained rate per
//! minute and a burst. Resolvers check it before calling a service, once
//! per field executed (an aliased or batched flood pays per copy). Over the
//! limit a field fails with `RATE_LIMITED` and `extensions.retryAfter`
//! (seconds); when that left a request with no data at all, the HTTP layer
//! answers 429 with `Retry-After`.
//!
//! Memory stays bounded: a sweeper drops the addresses whose state is back
//! to fresh ([`RateLimiters::sweep`]), and IPv6 clients are keyed by their
//! /64 (one subscriber's whole network), so an attacker cannot grow the
//! table by rotating through the addresses of one prefix.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, ErrorExtensions};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::errors::{Code, api_error};

/// A sustained rate and a burst. `per_minute = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests per minute, sustained.
    pub per_minute: u32,
    /// Requests allowed at once on top of an idle period.
    pub burst: u32,
}

impl Rate {
    pub const OFF: Rate = Rate { per_minute: 0, burst: 0 };

    fn quota(self) -> Option<Quota> {
        let per_minute = NonZeroU32::new(self.per_minute)?;
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Some(Quota::per_minute(per_minute).allow_burst(burst))
    }
}

/// The limits per client address, by class of operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// `register`, `login`, `refreshToken` and `changePassword`: each one
    /// hashes a password or checks a token.
    pub auth: Rate,
    /// `products` as a search (with `query`, `filter`, `sort` or `facets`).
    pub search: Rate,
    /// Plugin uploads (a multipart `POST /graphql` or `PUT /plugins/{name}`,
    /// charged before the body is read) and dry runs (`previewPricing`,
    /// `previewValidation`): each one compiles or runs a component.
    pub plugin: Rate,
}

impl RateLimits {
    pub const OFF: RateLimits = RateLimits { auth: Rate::OFF, search: Rate::OFF, plugin: Rate::OFF };
}

impl Default for RateLimits {
    /// Far above what one person does (a sign-in a minute, a search every
    /// few seconds); an address shared by many people (an office, a mobile
    /// carrier's NAT) may need more.
    fn default() -> Self {
        Self {
            auth: Rate { per_minute: 60, burst: 30 },
            search: Rate { per_minute: 300, burst: 60 },
            plugin: Rate { per_minute: 30, burst: 10 },
        }
    }
}

/// What a rate limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Auth,
    Search,
    Plugin,
}

impl Class {
    fn describe(self) -> &'static str {
        match self {
            Class::Auth => "sign-in and registration attempts",
            Class::Search => "searches",
            Class::Plugin => "plugin uploads and previews",
        }
    }
}

/// The limiters of one gateway; shared by every request.
pub struct RateLimiters {
    auth: Option<DefaultKeyedRateLimiter<String>>,
    search: Option<DefaultKeyedRateLimiter<String>>,
    plugin: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl RateLimiters {
    pub fn new(limits: RateLimits) -> Arc<Self> {
        Arc::new(Self {
            auth: limits.auth.quota().map(DefaultKeyedRateLimiter::keyed),
            search: limits.search.quota().map(DefaultKeyedRateLimiter::keyed),
            plugin: limits.plugin.quota().map(DefaultKeyedRateLimiter::keyed),
            clock: DefaultClock::default(),
        })
    }

    fn limiter(&self, class: Class) -> Option<&DefaultKeyedRateLimiter<String>> {
        match class {
            Class::Auth => self.auth.as_ref(),
            Class::Search => self.search.as_ref(),
            Class::Plugin => self.plugin.as_ref(),
        }
    }

    /// Takes one request of `class` from `address`; `Err` says how long
    /// until the next one is allowed.
    pub fn check(&self, class: Class, address: &str) -> Result<(), Duration> {
        let Some(limiter) = self.limiter(class) else { return Ok(()) };
        limiter.check_key(&key(address)).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets the addresses whose state is indistinguishable from a fresh
    /// one (no request within their window) and gives the memory back.
    pub fn sweep(&self) {
        for limiter in [&self.auth, &self.search, &self.plugin].into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Addresses currently tracked, over all classes.
    pub fn tracked(&self) -> usize {
        [&self.auth, &self.search, &self.plugin].into_iter().flatten().map(|l| l.len()).sum()
    }
}

/// The limiter key of a client address: the address itself, or the /64 of
/// an IPv6 address (an IPv4-mapped one counts as IPv4).
fn key(address: &str) -> String {
    match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        _ => address.to_string(),
    }
}

/// Whole seconds to wait, at least one (the `Retry-After` value).
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The message of a `RATE_LIMITED` refusal.
pub(crate) fn refusal(class: Class, seconds: u64) -> String {
    format!("too many {} from your address; retry in {seconds} s", class.describe())
}

/// For resolvers: takes one request of `class` from the caller's address,
/// or fails with `RATE_LIMITED`.
pub(crate) fn check(ctx: &Context<'_>, class: Class) -> async_graphql::Result<()> {
    let Ok(limiters) = ctx.data::<Arc<RateLimiters>>() else { return Ok(()) };
    let request = crate::schema::request_context(ctx)?;
    limiters.check(class, &request.client_address).map_err(|wait| {
        let seconds = retry_after_secs(wait);
        api_error(Code::RateLimited, refusal(class, seconds)).extend_with(|_, e| e.set("retryAfter", seconds))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::7"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(key("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn a_burst_then_the_rate_then_a_sweep_forgets_idle_addresses() {
        let limiters = RateLimiters::new(RateLimits {
            auth: Rate { per_minute: 60, burst: 3 },
            search: Rate::OFF,
            plugin: Rate::OFF,
        });
        for _ in 0..3 {
            assert!(limiters.check(Class::Auth, "192.0.2.1").is_ok());
        }
        let wait = limiters.check(Class::Auth, "192.0.2.1").unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiters.check(Class::Auth, "192.0.2.2").is_ok(), "another address has its own budget");
        assert!(limiters.check(Class::Search, "192.0.2.1").is_ok(), "an unlimited class");
        assert_eq!(limiters.tracked(), 2);
        // The second address used one of three cells (a second's worth):
        // two seconds on it is fresh again and the sweep drops it; the
        // first used three seconds' worth and stays.
        std::thread::sleep(Duration::from_millis(2500));
        limiters.sweep();
        assert_eq!(limiters.tracked(), 1, "only the busy address is kept");
    }
}
