//! One module per route.

pub mod admin;
pub mod home;
pub mod jobs;
pub mod login;
pub mod not_found;
pub mod review;
pub mod upload;
