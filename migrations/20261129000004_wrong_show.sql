-- A scan at a door of one show of a ticket for another show of the event is recorded
-- `wrong_show` (the scan names the door's show; the code names the ticket's).
alter table checkins drop constraint checkins_result_check;
alter table checkins add constraint checkins_result_check check (result in
    ('ok', 'already_redeemed', 'duplicate_offline', 'void', 'wrong_event', 'wrong_show', 'invalid'));
