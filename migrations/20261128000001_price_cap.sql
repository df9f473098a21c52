-- A ticket's price is bounded here as well as in the ledger
-- (`tessera_domain::money::PRICE_MINOR_MAX`, 10 million major units), so whatever writes a
-- row, `price × quantity` (quantity at most 100) stays far inside bigint. The ledger's
-- catalog tests keep the two bounds equal.
alter table zones add constraint zone_price_max check (price_minor <= 1000000000);
-- A hold copies its zone's price at hold time.
alter table holds add constraint hold_unit_price_max check (unit_price_minor <= 1000000000);
