-- How many rows a running operation has moved so far (the insert's slices report it), so
-- that its job's page can draw how far it has come, not only say it.
ALTER TABLE merchant_operations ADD COLUMN rows_done bigint;
