//! The built-in providers: `manual` and `test`.

use sha2::{Digest, Sha256};

use super::webhook::{WebhookError, WebhookSecret, parse_event};
use super::{Amount, AuthorizeOutcome, AuthorizeRequest, PaymentEvent, PaymentProvider, ProviderError};

/// Payments an operator collects outside any provider (bank transfer, cash
/// on delivery): authorizing records the promise to pay, capturing that
/// the money arrived. Nothing leaves the host; there are no webhooks.
pub struct ManualProvider;

fn reference(prefix: &str, idempotency_key: &str) -> String {
    let digest = Sha256::digest(format!("polyscale-{prefix}-provider:{idempotency_key}").as_bytes());
    format!("{prefix}_{}", &hex::encode(digest)[..24])
}

fn check_reference(prefix: &str, reference: &str) -> Result<(), ProviderError> {
    let ok = reference
        .strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('_'))
        .is_some_and(|hex| hex.len() == 24 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    if ok { Ok(()) } else { Err(ProviderError::Invalid(format!("`{reference}` is not a {prefix} payment reference"))) }
}

fn check_key(key: &str) -> Result<(), ProviderError> {
    if key.is_empty() || key.len() > 255 {
        return Err(ProviderError::Invalid("the idempotency key must be 1 to 255 bytes".into()));
    }
    Ok(())
}

#[async_trait::async_trait]
impl PaymentProvider for ManualProvider {
    async fn authorize(&self, request: AuthorizeRequest<'_>) -> Result<AuthorizeOutcome, ProviderError> {
        request.amount.check()?;
        check_key(request.idempotency_key)?;
        Ok(AuthorizeOutcome::Succeeded { reference: reference("manual", request.idempotency_key) })
    }

    async fn capture(&self, _reference: &str, amount: &Amount) -> Result<(), ProviderError> {
        amount.check()
    }

    async fn refund(&self, _reference: &str, amount: &Amount) -> Result<(), ProviderError> {
        amount.check()
    }

    async fn void(&self, _reference: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    fn verify_webhook(&self, _signature: &str, _body: &[u8], _now_s: i64) -> Result<PaymentEvent, WebhookError> {
        Err(WebhookError::Unsupported)
    }
}

/// Succeeds.
pub const TEST_CARD_SUCCEEDS: &str = "4242424242424242";
/// Declined ("card declined").
pub const TEST_CARD_DECLINED: &str = "4000000000000002";
/// Requires an action (a 3-D Secure challenge); a webhook completes it.
pub const TEST_CARD_REQUIRES_ACTION: &str = "4000002500003155";

/// A provider with deterministic outcomes by card number, like the usual
/// test cards, and webhooks signed with its secret. References derive
/// from the idempotency key, so a retried authorization gets the same one.
/// It keeps no state: capture, refund and void check their input only
/// (the order component keeps the amounts).
pub struct TestProvider {
    webhook_secret: WebhookSecret,
}

impl TestProvider {
    pub fn new(webhook_secret: WebhookSecret) -> Self {
        Self { webhook_secret }
    }
}

#[async_trait::async_trait]
impl PaymentProvider for TestProvider {
    async fn authorize(&self, request: AuthorizeRequest<'_>) -> Result<AuthorizeOutcome, ProviderError> {
        request.amount.check()?;
        check_key(request.idempotency_key)?;
        let card: String = request.source.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
        let reference = reference("test", request.idempotency_key);
        Ok(match card.as_str() {
            TEST_CARD_SUCCEEDS => AuthorizeOutcome::Succeeded { reference },
            TEST_CARD_DECLINED => AuthorizeOutcome::Declined { reason: "card declined".into() },
            TEST_CARD_REQUIRES_ACTION => AuthorizeOutcome::RequiresAction {
                next_step: format!("https://test-provider.invalid/3ds/{reference}"),
                reference,
            },
            _ => AuthorizeOutcome::Declined { reason: "unknown test card".into() },
        })
    }

    async fn capture(&self, reference: &str, amount: &Amount) -> Result<(), ProviderError> {
        check_reference("test", reference)?;
        amount.check()
    }

    async fn refund(&self, reference: &str, amount: &Amount) -> Result<(), ProviderError> {
        check_reference("test", reference)?;
        amount.check()
    }

    async fn void(&self, reference: &str) -> Result<(), ProviderError> {
        check_reference("test", reference)
    }

    fn verify_webhook(&self, signature: &str, body: &[u8], now_s: i64) -> Result<PaymentEvent, WebhookError> {
        self.webhook_secret.verify(signature, body, now_s)?;
        parse_event(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Amount {
        Amount { minor, currency: "USD".into() }
    }

    async fn authorize(card: &str, key: &str, amount: &Amount) -> Result<AuthorizeOutcome, ProviderError> {
        let provider = TestProvider::new(WebhookSecret::new(b"0123456789abcdef"));
        provider.authorize(AuthorizeRequest { order_id: "o", amount, source: card, idempotency_key: key }).await
    }

    #[tokio::test]
    async fn test_cards_decide_the_outcome_and_keys_the_reference() {
        let ok = authorize(TEST_CARD_SUCCEEDS, "k1", &usd(100)).await.unwrap();
        let AuthorizeOutcome::Succeeded { reference } = &ok else { panic!("{ok:?}") };
        assert!(reference.starts_with("test_"));
        assert_eq!(authorize("4242 4242 4242 4242", "k1", &usd(100)).await.unwrap(), ok, "same key, same reference");
        assert_ne!(authorize(TEST_CARD_SUCCEEDS, "k2", &usd(100)).await.unwrap(), ok);
        assert_eq!(
            authorize(TEST_CARD_DECLINED, "k1", &usd(100)).await.unwrap(),
            AuthorizeOutcome::Declined { reason: "card declined".into() }
        );
        assert!(matches!(
            authorize(TEST_CARD_REQUIRES_ACTION, "k1", &usd(100)).await.unwrap(),
            AuthorizeOutcome::RequiresAction { .. }
        ));
        assert_eq!(
            authorize("4111111111111111", "k1", &usd(100)).await.unwrap(),
            AuthorizeOutcome::Declined { reason: "unknown test card".into() }
        );
        assert!(matches!(authorize(TEST_CARD_SUCCEEDS, "k1", &usd(0)).await, Err(ProviderError::Invalid(_))));
        let lower = Amount { minor: 5, currency: "usd".into() };
        assert!(matches!(authorize(TEST_CARD_SUCCEEDS, "k1", &lower).await, Err(ProviderError::Invalid(_))));
        let provider = TestProvider::new(WebhookSecret::new(b"0123456789abcdef"));
        assert!(provider.capture(reference, &usd(5)).await.is_ok());
        assert!(provider.capture("test_nothex", &usd(5)).await.is_err());
        assert!(provider.refund(reference, &usd(-1)).await.is_err());
    }
}
