//! Errors of reference scoring: shapes that do not agree, and requests that cannot be served.

/// Result alias of this crate.
pub type Result<T, E = ReferenceError> = std::result::Result<T, E>;

/// What went wrong; each variant names what was compared.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReferenceError {
    /// Two shapes that must agree do not.
    #[error("{what}: expected {expected}, found {found}")]
    Shape {
        /// What was compared.
        what: String,
        /// Expected value.
        expected: String,
        /// Found value.
        found: String,
    },
    /// A value outside its domain (a fraction, a count).
    #[error("{what}: expected {expected}, found {found}")]
    Invalid {
        /// The setting or argument.
        what: String,
        /// Its domain.
        expected: String,
        /// The value given.
        found: String,
    },
}

impl ReferenceError {
    /// A shape mismatch.
    pub fn shape(what: impl Into<String>, expected: impl ToString, found: impl ToString) -> Self {
        Self::Shape { what: what.into(), expected: expected.to_string(), found: found.to_string() }
    }

    /// A value outside its domain.
    pub fn invalid(what: impl Into<String>, expected: impl ToString, found: impl ToString) -> Self {
        Self::Invalid { what: what.into(), expected: expected.to_string(), found: found.to_string() }
    }
}
