-- The re-issue step runs at every start (`migrate`, `seed`, `serve`): with this index it
-- finds the tickets whose code predates signing without reading the whole table, and
-- once they are signed the index is empty.
create index tickets_unsigned_code_idx on tickets (id) where length(code) <> 154;
