//! Integration tests: the real router, against the real PostgreSQL, a fresh database each.

mod auth;
mod duplicates;
mod health;
mod helpers;
mod insert;
mod jobs;
mod matrix;
mod migrations;
mod reports;
mod staging;
mod startup;
