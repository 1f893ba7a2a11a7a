//! Workspace integration tests for Loupe; see the `tests/` folder of this crate.
