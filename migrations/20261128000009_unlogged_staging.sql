-- Staging is a working copy of files the user still holds, and writing it to the WAL as
-- well as to the table was a third of the cost of staging a batch (and most of the cost of
-- the duplicate check's rewrite of the flags): the staging table is now UNLOGGED. Production
-- data (codes, jobs, uploads, operations) stays logged.
--
-- The price: after a crash of the database (not of the app), PostgreSQL empties unlogged
-- tables. `staging_intact` is unlogged too and holds one row; when the app finds it empty,
-- it marks the uploads whose rows were staged as lost, tells the user to upload those files
-- again, and puts the row back (`staging::ssr::recover_lost_staging`).
ALTER TABLE codes_check_temp SET UNLOGGED;

CREATE UNLOGGED TABLE staging_intact (
    intact boolean NOT NULL DEFAULT true,
    CONSTRAINT staging_intact_pkey PRIMARY KEY (intact),
    CONSTRAINT staging_intact_true CHECK (intact)
);
INSERT INTO staging_intact VALUES (true);

ALTER TABLE uploads DROP CONSTRAINT uploads_status_check,
    ADD CONSTRAINT uploads_status_check CHECK (status IN ('uploading', 'complete', 'cancelled', 'lost'));
