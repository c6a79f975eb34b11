//! Integration tests: the real router, against the real PostgreSQL, a fresh database each.

mod adoption;
mod auth;
mod batches;
mod duplicates;
mod faults;
mod hardening;
mod health;
mod helpers;
mod insert;
mod jobs;
mod mappings;
mod matrix;
mod migrations;
mod operability;
mod poolers;
mod processes;
mod reports;
mod review;
mod staging;
mod startup;
