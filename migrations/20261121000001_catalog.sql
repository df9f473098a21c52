-- Catalog: tenants own venues and events; events have shows; shows have zones.
-- Invariants live here as constraints so a bug in code cannot commit them away.

create extension if not exists pg_trgm;

create table tenants (
    id uuid primary key,
    name text not null check (length(name) between 1 and 200),
    created_at timestamptz not null default now()
);

-- Admin bearer tokens. Only a SHA-256 of the token is stored: a leaked table grants nothing.
create table api_tokens (
    token_sha256 bytea primary key check (length(token_sha256) = 32),
    tenant_id uuid not null references tenants (id) on delete cascade,
    label text not null default '',
    created_at timestamptz not null default now()
);

create table categories (
    slug text primary key check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name text not null
);

create table venues (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    name text not null check (length(name) between 1 and 200),
    city text not null check (length(city) between 1 and 100),
    country char(2) not null check (country ~ '^[A-Z]{2}$'),
    timezone text not null,
    created_at timestamptz not null default now()
);
create index venues_tenant_idx on venues (tenant_id);

create table events (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    venue_id uuid not null references venues (id),
    category_slug text not null references categories (slug),
    slug text not null check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and length(slug) <= 100),
    title text not null check (length(title) between 1 and 200),
    description text not null default '' check (length(description) <= 10000),
    status text not null default 'draft' check (status in ('draft', 'published', 'cancelled')),
    featured boolean not null default false,
    booking_opens_at timestamptz,
    booking_closes_at timestamptz,
    max_tickets_per_customer int check (max_tickets_per_customer > 0),
    -- Denormalised for listing order and the `from`/`to` filters; kept by the ledger
    -- whenever shows change.
    starts_at timestamptz,
    -- Bumped on every catalog change of the event or its shows/zones: the edge's ETag.
    version bigint not null default 1 check (version > 0),
    search tsvector generated always as (
        setweight(to_tsvector('simple', title), 'A') ||
        setweight(to_tsvector('simple', description), 'C')
    ) stored,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (tenant_id, slug),
    check (booking_closes_at is null or booking_opens_at is null or booking_opens_at < booking_closes_at)
);
create index events_listing_idx on events (starts_at, id) where status = 'published';
create index events_search_idx on events using gin (search);
create index events_title_trgm_idx on events using gin (title gin_trgm_ops);
create index events_category_idx on events (category_slug) where status = 'published';

create table shows (
    id uuid primary key,
    event_id uuid not null references events (id) on delete cascade,
    starts_at timestamptz not null,
    sale_starts_at timestamptz,
    sale_ends_at timestamptz,
    created_at timestamptz not null default now(),
    check (sale_ends_at is null or sale_starts_at is null or sale_starts_at < sale_ends_at)
);
create index shows_event_idx on shows (event_id, starts_at);

create table zones (
    id uuid primary key,
    show_id uuid not null references shows (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    price_minor bigint not null check (price_minor >= 0),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    -- 'assigned' zones will sell specific seats (a later migration adds the seats table);
    -- counters below stay the zone's totals either way.
    seating text not null default 'general_admission' check (seating in ('general_admission', 'assigned')),
    capacity int not null check (capacity >= 0),
    available int not null,
    held int not null default 0,
    sold int not null default 0,
    min_per_order int not null default 1,
    max_per_order int not null default 10,
    sort_order int not null default 0,
    -- Increases on every change of the counters: edges keep the newest copy.
    version bigint not null default 1 check (version > 0),
    -- Invariant 1 (conservation) and no oversell, enforced at every commit.
    constraint zone_counters_nonnegative check (available >= 0 and held >= 0 and sold >= 0),
    constraint zone_conservation check (available + held + sold = capacity),
    constraint zone_order_limits check (min_per_order >= 1 and min_per_order <= max_per_order and max_per_order <= 100)
);
create index zones_show_idx on zones (show_id, sort_order);
