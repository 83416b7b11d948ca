//! The benchmark's error type: a message, with `?` from any error.

/// Any failure of the benchmark, as a message for the operator.
pub type BenchError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The benchmark's result type.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// An error from a message.
pub(crate) fn err(message: impl Into<String>) -> BenchError {
    message.into().into()
}
