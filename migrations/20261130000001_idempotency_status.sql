-- A stored result replays with the HTTP status it was stored with: only a final status
-- (the ledger stores 2xx and 4xx; transient 5xx never). The ledger decodes the column into
-- an HTTP status and refuses anything else (`idempotency::StoredStatus`); this keeps such a
-- row from being written in the first place. The table is pruned to its retention, so the
-- check's scan is short.
alter table idempotency
    add constraint idempotency_response_status_final
        check (response_status between 200 and 599);
