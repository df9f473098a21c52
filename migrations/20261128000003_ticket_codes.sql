-- Signed ticket codes (DESIGN.md "The ticket's life after the sale", invariant 10).
--
-- Each event has Ed25519 key pairs, made when it is published; tickets' codes are signed
-- with the newest one (`tessera_domain::tickets`). The private half is the 32-byte seed:
-- it is read only to sign and appears in no answer, log line or outbox payload. A key
-- stays valid for the codes it signed until it is revoked; rotating adds a newer key.
create table event_keys (
    event_id uuid not null references events (id),
    -- The code's key id: a u16 on the wire.
    key_id integer not null check (key_id between 1 and 65535),
    public_key bytea not null check (length(public_key) = 32),
    private_key bytea not null check (length(private_key) = 32),
    created_at timestamptz not null default now(),
    revoked_at timestamptz,
    primary key (event_id, key_id)
);

-- Codes made before keys existed are 12 characters; `tessera-ledger migrate` and `serve`
-- sign them again after migrating (the re-issue step, README "Ticket codes"). A signed
-- code is 154 characters.
alter table tickets add constraint ticket_code_length check (length(code) in (12, 154));
