-- Assigned seating (DESIGN.md invariants 7 and 8). A zone with seating = 'assigned' has
-- one row here per seat, made with the zone. Its counters are its seats' states:
-- `available`, `held` and `sold` count the seats in that state, and `capacity` the seats
-- that are not blocked (a blocked seat is out of sale: house seats, broken seats).

create table seats (
    zone_id uuid not null references zones (id) on delete cascade,
    -- The seat's place in the zone's layout, 0-based and dense, fixed when the zone is
    -- made: its id within the zone in the API, and its index in the status map and in
    -- seat-change messages.
    seat_index int not null check (seat_index >= 0),
    section text not null default '' check (length(section) <= 32),
    row_label text not null check (length(row_label) between 1 and 16),
    -- Rows front to back and places along a row: what "adjacent" and "nearest the front"
    -- mean for best available (an aisle skips a position).
    row_order int not null check (row_order >= 0),
    position int not null check (position >= 0),
    number int not null check (number between 1 and 100000),
    x real not null,
    y real not null,
    status text not null default 'available'
        check (status in ('available', 'held', 'sold', 'blocked')),
    -- The live hold that has the seat (held), or the confirmed hold and its ticket (sold).
    -- No foreign keys: each would be a per-row trigger query on the seat holds' update,
    -- and the hold and ticket rows name the zone already.
    hold_id uuid,
    ticket_id uuid,
    primary key (zone_id, seat_index),
    -- A buyer reads a seat by its section, row and number: one seat each.
    constraint seats_place_key unique (zone_id, section, row_label, number),
    -- Invariant 7: one state, and the owner that state needs, no other.
    constraint seat_owner check (
        (status in ('available', 'blocked') and hold_id is null and ticket_id is null)
        or (status = 'held' and hold_id is not null and ticket_id is null)
        or (status = 'sold' and hold_id is not null and ticket_id is not null)
    )
);
-- A ticket has at most one seat.
create unique index seats_ticket_key on seats (ticket_id) where ticket_id is not null;
-- Confirm, release and expiry find a hold's seats.
create index seats_hold_idx on seats (hold_id) where hold_id is not null;

-- A seat hold's seats (indexes in its zone), kept after the hold ends so its record says
-- which seats it had; null for general admission.
alter table holds add column seat_indexes int[]
    check (seat_indexes is null or cardinality(seat_indexes) = quantity);
-- The seat a ticket admits to (an index in its zone); null for general admission.
alter table tickets add column seat_index int check (seat_index >= 0);
