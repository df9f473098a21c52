-- The front door (DESIGN.md "The front door"): an event's queue for its on-sale.
-- `joined` is the last position handed out (positions are 1, 2, … without gaps: a join
-- batch takes them under this row's lock); `serving` the last one let in, moved on by the
-- ledger at `admit_per_minute` from `advanced_at` (the instant admissions are credited up
-- to); `version` grows with every change edges must learn of.
create table event_queues (
    event_id uuid primary key references events (id) on delete cascade,
    enabled boolean not null,
    admit_per_minute integer not null check (admit_per_minute between 1 and 100000),
    session_minutes integer not null check (session_minutes between 1 and 240),
    opens_at timestamptz,
    joined bigint not null default 0 check (joined >= 0),
    serving bigint not null default 0 check (serving >= 0 and serving <= joined),
    version bigint not null default 1,
    advanced_at timestamptz not null,
    updated_at timestamptz not null default now()
);

-- Joins that named an `Idempotency-Key`: joining again with it gives the same place.
create table queue_joins (
    event_id uuid not null references event_queues (event_id) on delete cascade,
    idempotency_key text not null check (length(idempotency_key) between 1 and 128),
    position bigint not null check (position >= 1),
    joined_at timestamptz not null,
    primary key (event_id, idempotency_key)
);

-- The admission pass a hold was placed with: one pass admits one buyer, a bounded number
-- of holds (`tessera_domain::queue::HOLDS_PER_PASS_MAX`).
alter table holds add column pass_id uuid;
create index holds_pass_idx on holds (pass_id) where pass_id is not null;
