//! Cancelled orders and the refunds they owe (DESIGN.md "The ticket's life after the
//! sale"): an organizer cancels a confirmed order, the ledger voids its tickets, returns
//! its stock and records the refund due; the organizer marks it refunded with the payment
//! provider's reference once the money went back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fields::single_line;
use crate::holds::HoldView;
use crate::problem::FieldError;
use crate::Currency;

/// Longest payment provider reference for a refund.
pub const REFUND_REFERENCE_CHARS_MAX: usize = 128;

/// A refund's state: `due` until the organizer says the money went back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Due,
    Refunded,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Due => "due",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Due, Self::Refunded]
            .into_iter()
            .find(|status| status.as_str() == s)
    }
}

crate::catalog::stored_as_text!(RefundStatus, "refund status", |text| RefundStatus::parse(
    text
));

/// A refund, as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefundView {
    pub refund_id: Uuid,
    pub hold_id: crate::HoldId,
    /// The order's total, in minor units of `currency`.
    pub amount_minor: i64,
    pub currency: Currency,
    pub status: RefundStatus,
    /// The payment provider's reference, once refunded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// `POST /admin/v1/orders/{hold_id}/cancel`: the order as it is now and its refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CancelledOrder {
    pub order: HoldView,
    /// Its tickets, all void now.
    pub voided_tickets: Vec<crate::TicketId>,
    pub refund: RefundView,
}

/// `POST /admin/v1/refunds/{refund_id}/complete`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteRefund {
    /// The payment provider's reference of the refund.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
        )
    )]
    pub reference: String,
}

impl CompleteRefund {
    pub fn parse(&self) -> Result<String, Vec<FieldError>> {
        single_line("reference", &self.reference, REFUND_REFERENCE_CHARS_MAX).map_err(|e| vec![e])
    }
}
