//! The `payments` capability: payment providers held by the host, so that
//! provider keys and webhook secrets never enter a component.
//!
//! A provider is a [`PaymentProvider`]; the configured ones are a
//! [`PaymentProviders`] registry keyed by name. The order component names a
//! provider and the host calls it ([`host`]); webhooks are verified here
//! too ([`PaymentProviders::verify_webhook`]), by the order service's host,
//! before the component sees the event.
//!
//! Built in:
//! - [`ManualProvider`] (`manual`): payments an operator collects (bank
//!   transfer, cash on delivery). Authorizing records the promise;
//!   capture, refund and void are bookkeeping. No webhooks.
//! - [`TestProvider`] (`test`): deterministic outcomes by card number, and
//!   signed webhooks (see [`webhook`]), for development and tests. Off
//!   unless configured: it takes no money.

mod host;
mod providers;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

pub use host::{PaymentsCtxView, PaymentsView, add_to_linker};
pub use providers::{ManualProvider, TEST_CARD_DECLINED, TEST_CARD_REQUIRES_ACTION, TEST_CARD_SUCCEEDS, TestProvider};
pub use webhook::{WebhookError, WebhookSecret};

/// An amount in integer minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub minor: i64,
    pub currency: String,
}

impl Amount {
    /// Refuses amounts below 1 and currencies that are not three
    /// upper-case letters.
    pub fn check(&self) -> Result<(), ProviderError> {
        if self.minor < 1 {
            return Err(ProviderError::Invalid(format!("the amount must be at least 1, not {}", self.minor)));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ProviderError::Invalid(format!("`{}` is not an ISO 4217 currency code", self.currency)));
        }
        Ok(())
    }
}

/// An authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest<'a> {
    pub order_id: &'a str,
    pub amount: &'a Amount,
    /// A card number, a token, or free text: the provider's business.
    pub source: &'a str,
    /// The same key must give the same outcome and reference.
    pub idempotency_key: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// Authorized; the provider's reference.
    Succeeded {
        reference: String,
    },
    Declined {
        reason: String,
    },
    /// The payer must act; a webhook tells how it ended.
    RequiresAction {
        reference: String,
        next_step: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("declined: {0}")]
    Declined(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// What a verified webhook says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A pending action completed: authorized.
    Authorized,
    /// The payment's captured total at the provider is now `amount`.
    Captured,
    /// The pending action failed.
    Failed,
    /// The payment's refunded total at the provider is now `amount`.
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEvent {
    pub event_id: String,
    pub kind: EventKind,
    pub reference: String,
    pub amount: Option<Amount>,
}

/// A payment provider. Implementations hold their own keys; nothing of
/// them crosses into a component.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync {
    async fn authorize(&self, request: AuthorizeRequest<'_>) -> Result<AuthorizeOutcome, ProviderError>;
    async fn capture(&self, reference: &str, amount: &Amount) -> Result<(), ProviderError>;
    async fn refund(&self, reference: &str, amount: &Amount) -> Result<(), ProviderError>;
    async fn void(&self, reference: &str) -> Result<(), ProviderError>;
    /// Verifies a webhook's signature header over the raw body at `now_s`
    /// (Unix seconds) and parses its event.
    fn verify_webhook(&self, signature: &str, body: &[u8], now_s: i64) -> Result<PaymentEvent, WebhookError>;
}

/// Which providers run, and their secrets.
#[derive(Clone, Default)]
pub struct PaymentsConfig {
    /// Enables the `test` provider, with this webhook signing secret.
    pub test_webhook_secret: Option<WebhookSecret>,
}

impl std::fmt::Debug for PaymentsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsConfig").field("test", &self.test_webhook_secret.is_some()).finish()
    }
}

/// The configured providers, by name.
#[derive(Clone, Default)]
pub struct PaymentProviders {
    providers: HashMap<String, Arc<dyn PaymentProvider>>,
}

impl PaymentProviders {
    /// `manual` always; `test` when it has a webhook secret.
    pub fn from_config(config: &PaymentsConfig) -> Self {
        let mut providers = Self::default();
        providers.register("manual", Arc::new(ManualProvider));
        if let Some(secret) = &config.test_webhook_secret {
            providers.register("test", Arc::new(TestProvider::new(secret.clone())));
        }
        providers
    }

    pub fn register(&mut self, name: &str, provider: Arc<dyn PaymentProvider>) {
        self.providers.insert(name.to_string(), provider);
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn PaymentProvider>> {
        self.providers.get(name)
    }

    /// Verifies a webhook for `provider` at the current time.
    pub fn verify_webhook(&self, provider: &str, signature: &str, body: &[u8]) -> Result<PaymentEvent, WebhookError> {
        let provider = self.get(provider).ok_or(WebhookError::UnknownProvider)?;
        let now_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or_default();
        provider.verify_webhook(signature, body, now_s)
    }
}
