-- The review points an internal duplicate to its code's first occurrence in the batch. The
-- duplicate check knows that row (it groups each repeated code with its first row) and writes
-- it here in the same rewrite that sets the flags: no index, nothing for staging to pay, NULL
-- for every row that is not an internal duplicate. Adding a column without a default changes
-- only the catalogue.
ALTER TABLE codes_check_temp ADD COLUMN IF NOT EXISTS first_row bigint;
