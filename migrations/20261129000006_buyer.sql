-- Who bought (`tessera_domain::buyer`): the name and e-mail a storefront's checkout asks
-- for, written by the confirm that makes the hold an order. Optional: API clients may
-- confirm without them, and a hold not yet bought has none. Personal data: read by the
-- order page only, never copied into outbox messages or integration events.
alter table holds
    add column buyer_name text,
    add column buyer_email text,
    -- BUYER_NAME_CHARS_MAX, stored trimmed.
    add constraint hold_buyer_name check (char_length(buyer_name) between 1 and 100),
    -- EMAIL_CHARS_MAX; one @, a local part of 1 to EMAIL_LOCAL_CHARS_MAX characters, a
    -- domain of non-empty labels with a dot (the shared rule also refuses white space and
    -- control characters, which this database's locale-dependent classes cannot state).
    add constraint hold_buyer_email check (
        char_length(buyer_email) <= 254
        and buyer_email ~ '^[^@]{1,64}@[^@.]+(\.[^@.]+)+$'),
    -- A buyer is both fields, and only on an order that was paid for.
    add constraint hold_buyer_whole check ((buyer_name is null) = (buyer_email is null)),
    add constraint hold_buyer_paid check (buyer_name is null or payment_ref is not null);
