//! Integration tests: the real router, against the real PostgreSQL, a fresh database each.

mod health;
mod helpers;
mod jobs;
mod migrations;
mod startup;
