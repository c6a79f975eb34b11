//! One module per route.

pub mod home;
pub mod jobs;
pub mod not_found;
pub mod upload;
