-- Staging takes 15 M rows in one batch: every secondary index on codes_check_temp doubled the
-- cost of staging them (measured by `server bench`), and the duplicate check works set-wise
-- (sorts and hash joins over the merchant's rows) without them. The primary key
-- (merchant_id, row_number) stays: rows arrive in its order, and it serves keyset paging.
DROP INDEX IF EXISTS idx_codes_check_temp_merchant_code;
DROP INDEX IF EXISTS idx_codes_check_temp_merchant_flags;
