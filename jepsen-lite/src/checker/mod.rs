//! Checkers: decide whether a recorded history keeps coord's promises.
//!
//! - [`linear`]: Wing–Gong–Lowe linearizability search over any [`linear::Model`].
//! - [`register`]: the register model (znode data + version; read, write, CAS).
//! - [`set`]: the set checker (lost, unexpected, duplicated adds; sequential order).

pub mod linear;
pub mod register;
pub mod set;

#[cfg(test)]
mod linear_tests;
