-- Inventory: holds, tickets, idempotency records and the outbox.

create table holds (
    id uuid primary key,
    zone_id uuid not null references zones (id),
    -- Copied from the zone's show and event (for the per-customer limit and reports). No
    -- foreign keys on the copies: each is a per-row trigger query on the hottest insert
    -- in the system, and the zone's key already ties the hold to both.
    show_id uuid not null,
    event_id uuid not null,
    -- Collation "C": ids compare as bytes (faster, and no locale can make two ids equal).
    customer_id text collate "C" not null check (length(customer_id) between 1 and 64),
    quantity int not null check (quantity between 1 and 100),
    unit_price_minor bigint not null check (unit_price_minor >= 0),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    status text not null default 'held' check (status in ('held', 'confirmed', 'released', 'expired')),
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    -- When the hold left 'held' (confirmed, released or expired).
    settled_at timestamptz,
    payment_ref text check (length(payment_ref) <= 128),
    -- The `Idempotency-Key` that created the hold and the hash of its request: the hold row
    -- is that request's stored result (a retry replays it), so a granted hold costs one
    -- row, not two. Refused requests are stored in `idempotency` instead.
    idempotency_key text collate "C" not null check (length(idempotency_key) between 1 and 128),
    request_sha256 bytea not null check (length(request_sha256) = 32),
    constraint holds_idempotency_key_key unique (idempotency_key),
    check ((status = 'held') = (settled_at is null)),
    check ((status = 'confirmed') = (payment_ref is not null))
);
-- The sweeper's scan: live holds by expiry.
create index holds_live_expiry_idx on holds (expires_at) where status = 'held';
-- The per-customer limit: live tickets of a customer for an event.
create index holds_customer_idx on holds (event_id, customer_id) where status in ('held', 'confirmed');

create table tickets (
    id uuid primary key,
    hold_id uuid not null references holds (id),
    zone_id uuid not null references zones (id),
    -- Printed on the ticket; unique so a scanner can look it up.
    code text not null unique,
    -- Reserved for assigned seating (a later migration adds seats).
    seat_id uuid,
    created_at timestamptz not null default now()
);
create index tickets_hold_idx on tickets (hold_id);
create index tickets_zone_idx on tickets (zone_id);

-- Stored results of idempotent requests (invariant 3) other than granted holds (which are
-- their own record, see `holds.idempotency_key`). `scope` names the operation (e.g.
-- 'hold', 'confirm:<hold_id>'), so one key cannot replay across operations.
create table idempotency (
    scope text collate "C" not null,
    key text collate "C" not null check (length(key) between 1 and 128),
    request_sha256 bytea not null check (length(request_sha256) = 32),
    response_status smallint not null,
    response_body jsonb not null,
    created_at timestamptz not null default now(),
    primary key (scope, key)
);
create index idempotency_created_idx on idempotency (created_at);

-- Transactional outbox (invariant 5): written in the same transaction as the change it
-- describes, published to Redis by the relay, then pruned. `seq` is assigned by the relay
-- in a committed step before publication, so published sequence numbers are gap-free
-- (a bigserial alone has gaps from rolled-back transactions) and a message re-sent after
-- a crash keeps its number.
create table outbox (
    id bigserial primary key,
    payload jsonb not null,
    created_at timestamptz not null default now(),
    seq bigint unique,
    published_at timestamptz,
    check (published_at is null or seq is not null)
);
-- Rows waiting for a number, and numbered rows waiting to be published, in order.
create index outbox_unnumbered_idx on outbox (id) where seq is null;
create index outbox_unpublished_idx on outbox (seq) where published_at is null and seq is not null;
create index outbox_published_idx on outbox (published_at) where published_at is not null;

-- The relay's counter: the last `seq` handed out. One row.
create table outbox_relay (
    singleton boolean primary key default true check (singleton),
    last_seq bigint not null default 0
);
insert into outbox_relay default values;
