//! The coord server library.

pub mod core;
