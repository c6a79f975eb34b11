-- The duplicate check rewrites the flags of ~30 % of the staged rows. With a quarter of every
-- page left free, the new row versions fit on their own page (HOT updates: no index entry,
-- no page elsewhere), which halved the check's writing in `server bench`; staging by COPY
-- costs the same either way. Applies to pages written from now on.
ALTER TABLE codes_check_temp SET (fillfactor = 75);
