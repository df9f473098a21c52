-- Revocation at the doors (DESIGN.md "The ticket's life after the sale"): each event's
-- count of voided tickets, the version edges apply `revocation` messages by. A
-- cancellation bumps it last in its transaction (after the hold, zone and seat rows every
-- mover locks first), so cancellations of one event queue here without deadlocks.
create table ticket_revocations (
    event_id uuid primary key references events (id),
    version bigint not null check (version >= 0)
);

-- An event's revoked set: the tickets of its cancelled orders, found without reading the
-- rest of its holds.
create index holds_cancelled_idx on holds (event_id) where status = 'cancelled';
