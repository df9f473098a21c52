-- Check-in at the door (DESIGN.md "The ticket's life after the sale", invariant 9).
--
-- A ticket is `valid`, `checked_in` or `void`; `valid → checked_in` happens once, in one
-- conditional update. A checked-in ticket keeps when and where it entered, also once
-- voided (history stays).
alter table tickets
    add column status text not null default 'valid'
        check (status in ('valid', 'checked_in', 'void')),
    add column checked_in_at timestamptz,
    add column checked_in_gate text,
    add constraint ticket_entry check (
        (checked_in_at is null) = (checked_in_gate is null)
        and (status <> 'checked_in' or checked_in_at is not null)
        and (status <> 'valid' or checked_in_at is null)
    );

-- Staff devices' credentials: the token is signed with the event's key (it names the
-- credential, tenant, event, gate and expiry); this row says whether it is revoked.
create table gate_credentials (
    id uuid primary key,
    event_id uuid not null references events (id),
    gate text not null check (char_length(gate) between 1 and 32),
    expires_at timestamptz not null,
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);
create index gate_credentials_event_idx on gate_credentials (event_id);

-- Every scan, with the verdict it got: the same nonce from the same credential replays it.
create table checkins (
    credential_id uuid not null references gate_credentials (id),
    nonce text not null check (length(nonce) between 1 and 64),
    ticket_id uuid references tickets (id),
    gate text not null,
    scanned_at timestamptz not null,
    recorded_at timestamptz not null default now(),
    result text not null check (result in
        ('ok', 'already_redeemed', 'duplicate_offline', 'void', 'wrong_event', 'invalid')),
    verdict jsonb not null,
    primary key (credential_id, nonce)
);
create index checkins_ticket_idx on checkins (ticket_id);
