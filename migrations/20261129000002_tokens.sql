-- Admin tokens managed without SQL (DESIGN.md "Organizers and integrations"): each token
-- gets a public id to list and revoke it by, the first characters of its text to recognise
-- it by (never enough to use it), when it was last used, when it expires and when it was
-- revoked. The token itself is still stored only as its SHA-256.

alter table api_tokens
    add column id uuid,
    -- `tsk_` and 8 of its random characters (tessera_domain::tokens::TOKEN_SHOWN_CHARS).
    -- Null for tokens made before this migration: their text was never kept.
    add column prefix text check (prefix ~ '^tsk_[A-Za-z0-9_-]{8}$'),
    -- Recorded at most once a minute per token (auth.rs), so a busy token does not write
    -- on every request.
    add column last_used_at timestamptz,
    add column expires_at timestamptz,
    add column revoked_at timestamptz;

-- Existing tokens get their ids here; new ones get a UUIDv7 from the ledger.
update api_tokens set id = gen_random_uuid() where id is null;

alter table api_tokens
    alter column id set not null,
    alter column id set default gen_random_uuid(),
    add constraint api_tokens_id_key unique (id),
    -- tessera_domain::tokens::TOKEN_LABEL_CHARS_MAX; labels so far were "initial" and "seed".
    add constraint api_tokens_label_check check (char_length(label) <= 64),
    add constraint api_tokens_expires_after_created check (expires_at > created_at),
    add constraint api_tokens_revoked_after_created check (revoked_at >= created_at),
    add constraint api_tokens_used_after_created check (last_used_at >= created_at);

-- A tenant's tokens, newest first (GET /admin/v1/tokens), and the count of its live ones.
create index api_tokens_tenant_idx on api_tokens (tenant_id, created_at desc);
