-- Webhooks (DESIGN.md "Organizers and integrations", invariant 11).
--
-- Integration events are written here in the same transaction as their change (a second
-- outbox, beside `outbox`, whose relay feeds the edges and never waits for webhooks). The
-- dispatcher fans each event out to the tenant's endpoints that want its type, then
-- delivers each endpoint's deliveries in event order, one endpoint at a time per process
-- (a lease on the endpoint row), retrying with backoff until `give_up_at`, then `dead`.
create table integration_events (
    seq bigserial primary key,
    id uuid not null unique,
    tenant_id uuid not null references tenants (id),
    type text not null,
    data jsonb not null,
    created_at timestamptz not null default now(),
    fanned_out boolean not null default false
);
create index integration_events_pending_idx on integration_events (seq) where not fanned_out;

create table webhook_endpoints (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    url text not null check (char_length(url) between 1 and 2048),
    event_types text[] not null check (cardinality(event_types) between 1 and 8),
    -- The signing secret: shown once when created, read only to sign.
    secret text not null,
    created_at timestamptz not null default now(),
    deleted_at timestamptz,
    -- Which dispatcher delivers to it now, until when (a crashed one's lease runs out).
    lease_owner uuid,
    lease_until timestamptz
);
create index webhook_endpoints_tenant_idx on webhook_endpoints (tenant_id) where deleted_at is null;

create table webhook_deliveries (
    id uuid primary key,
    endpoint_id uuid not null references webhook_endpoints (id),
    event_seq bigint not null references integration_events (seq),
    status text not null default 'pending' check (status in ('pending', 'delivered', 'dead')),
    attempts int not null default 0 check (attempts >= 0),
    next_attempt_at timestamptz not null default now(),
    give_up_at timestamptz not null,
    last_attempt_at timestamptz,
    last_status smallint,
    last_error text,
    delivered_at timestamptz,
    unique (endpoint_id, event_seq),
    check ((status = 'delivered') = (delivered_at is not null))
);
-- Each endpoint's queue, oldest event first: the head decides when the endpoint is due.
create index webhook_deliveries_pending_idx on webhook_deliveries (endpoint_id, event_seq)
    where status = 'pending';
create index webhook_deliveries_endpoint_idx on webhook_deliveries (endpoint_id, event_seq desc);
