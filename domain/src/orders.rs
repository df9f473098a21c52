//! `GET /v1/orders/{hold_id}`: an order as its buyer sees it (DESIGN.md "The ticket's life
//! after the sale"). The hold id is the customer's order reference; the answer is the
//! ledger's own, never cached (a ticket's state changes at the door).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::buyer::BuyerView;
use crate::holds::{HoldView, TicketView};
use crate::refunds::RefundView;
use crate::tickets::TicketStatus;
use crate::EventId;

/// An order: its hold, what it cost, its tickets and, once cancelled, its refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderView {
    /// The hold (`held` while it is being bought; `confirmed` once it is an order;
    /// `cancelled` once the organizer cancelled it).
    #[serde(flatten)]
    pub hold: HoldView,
    pub event_id: EventId,
    /// `quantity × unit_price_minor`, in minor units of `currency`.
    pub total_minor: i64,
    /// The payment reference it was confirmed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_ref: Option<String>,
    /// Who bought it, if its confirm said (`buyer`): the name and e-mail as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<BuyerView>,
    /// Its tickets (none before it is confirmed), seats in layout order.
    pub tickets: Vec<OrderTicket>,
    /// The refund a cancellation owes, once it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundView>,
}

/// One ticket of an order, with its state at the door.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderTicket {
    #[serde(flatten)]
    pub ticket: TicketView,
    pub status: TicketStatus,
    /// When and at which gate it entered (kept once it is voided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_in_gate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voided_at: Option<DateTime<Utc>>,
}
