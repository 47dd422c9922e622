//! The `payments` WIT interface, answered with the configured providers.
//! A provider call ends at the component call's deadline (`unavailable`).

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{HasData, Linker};

use super::{Amount, AuthorizeRequest, PaymentProvider, PaymentProviders, ProviderError};
use crate::bindings::order::polyscale::commerce::payments::{
    self as wit, AuthorizeOutcome, Host, NextAction, PaymentError,
};
use crate::bindings::types::Money;
use crate::call::CallInfo;

/// What the payments host functions see: the providers and the call.
pub struct PaymentsCtxView<'a> {
    pub providers: &'a Arc<PaymentProviders>,
    pub call: &'a CallInfo,
}

/// Store data that carries the payments capability.
pub trait PaymentsView: Send {
    fn payments(&mut self) -> PaymentsCtxView<'_>;
}

struct HasPayments;

impl HasData for HasPayments {
    type Data<'a> = PaymentsCtxView<'a>;
}

/// Links `payments` for any store data with a [`PaymentsView`].
pub fn add_to_linker<T: PaymentsView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasPayments>(linker, |t| t.payments())
}

fn amount(m: Money) -> Amount {
    Amount { minor: m.amount, currency: m.currency }
}

fn error(e: ProviderError) -> PaymentError {
    match e {
        ProviderError::Declined(reason) => PaymentError::Declined(reason),
        ProviderError::Invalid(reason) => PaymentError::Invalid(reason),
        ProviderError::Unavailable(reason) => PaymentError::Unavailable(reason),
    }
}

impl PaymentsCtxView<'_> {
    fn provider(&self, name: &str) -> Result<Arc<dyn PaymentProvider>, PaymentError> {
        self.providers.get(name).cloned().ok_or_else(|| PaymentError::UnknownProvider(name.to_string()))
    }

    /// Runs a provider call until the component call's deadline.
    async fn bounded<T>(&self, call: impl Future<Output = Result<T, ProviderError>>) -> Result<T, PaymentError> {
        let result = match self.call.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::timeout(left, call)
                    .await
                    .map_err(|_| PaymentError::Unavailable("the payment provider did not answer in time".into()))?
            }
            None => call.await,
        };
        result.map_err(error)
    }
}

impl Host for PaymentsCtxView<'_> {
    async fn authorize(
        &mut self,
        provider: String,
        order_id: String,
        money: Money,
        source: String,
        idempotency_key: String,
    ) -> wasmtime::Result<Result<AuthorizeOutcome, PaymentError>> {
        let p = match self.provider(&provider) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let money = amount(money);
        let request = AuthorizeRequest {
            order_id: &order_id,
            amount: &money,
            source: &source,
            idempotency_key: &idempotency_key,
        };
        let outcome = self.bounded(p.authorize(request)).await;
        tracing::info!(
            provider,
            order_id,
            amount = money.minor,
            currency = money.currency,
            ok = outcome.is_ok(),
            "payment authorization"
        );
        Ok(outcome.map(|o| match o {
            super::AuthorizeOutcome::Succeeded { reference } => AuthorizeOutcome::Succeeded(reference),
            super::AuthorizeOutcome::Declined { reason } => AuthorizeOutcome::Declined(reason),
            super::AuthorizeOutcome::RequiresAction { reference, next_step } => {
                AuthorizeOutcome::RequiresAction(NextAction { reference, next_step })
            }
        }))
    }

    async fn capture(
        &mut self,
        provider: String,
        reference: String,
        money: Money,
    ) -> wasmtime::Result<Result<(), PaymentError>> {
        let p = match self.provider(&provider) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let money = amount(money);
        Ok(self.bounded(p.capture(&reference, &money)).await)
    }

    async fn refund(
        &mut self,
        provider: String,
        reference: String,
        money: Money,
    ) -> wasmtime::Result<Result<(), PaymentError>> {
        let p = match self.provider(&provider) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let money = amount(money);
        Ok(self.bounded(p.refund(&reference, &money)).await)
    }

    async fn void(&mut self, provider: String, reference: String) -> wasmtime::Result<Result<(), PaymentError>> {
        let p = match self.provider(&provider) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(self.bounded(p.void(&reference)).await)
    }
}
