-- Cancelling an order (DESIGN.md "The ticket's life after the sale", invariant 9): the
-- confirmed hold becomes `cancelled`, its tickets `void` (a checked-in ticket keeps when
-- and where it entered), its stock and seats go back on sale in the same transaction, and
-- one refund is due.
alter table holds drop constraint holds_status_check;
alter table holds add constraint holds_status_check
    check (status in ('held', 'confirmed', 'released', 'expired', 'cancelled'));

-- A cancelled order keeps the payment reference it was confirmed with.
do $$
declare name text;
begin
    select conname into name from pg_constraint
    where conrelid = 'holds'::regclass and contype = 'c'
      and pg_get_constraintdef(oid) like '%payment_ref IS NOT NULL%';
    execute format('alter table holds drop constraint %I', name);
end $$;
alter table holds add constraint hold_paid
    check ((status in ('confirmed', 'cancelled')) = (payment_ref is not null));

alter table tickets
    add column voided_at timestamptz,
    add constraint ticket_void check ((status = 'void') = (voided_at is not null));

create table refunds (
    id uuid primary key,
    -- One refund per order: cancelling is the whole order, and a retry finds this row.
    hold_id uuid not null unique references holds (id),
    amount_minor bigint not null check (amount_minor >= 0),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    status text not null default 'due' check (status in ('due', 'refunded')),
    reference text check (length(reference) between 1 and 128),
    created_at timestamptz not null default now(),
    completed_at timestamptz,
    check ((status = 'refunded') = (completed_at is not null)),
    check ((status = 'refunded') = (reference is not null))
);
