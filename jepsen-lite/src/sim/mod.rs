//! Deterministic simulation (being written).
