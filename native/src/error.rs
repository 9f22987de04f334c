//! Errors that cross into JavaScript as exceptions carrying a stable `code`.

use std::fmt;

#[derive(Debug, Clone)]
pub enum NativeError {
    /// The caller passed something unusable (wrong type, unknown algorithm, bad size).
    Argument(String),
    /// The input is not valid compressed data (or is truncated).
    Corrupt(String),
    /// The data decoded, but not to the size the caller said it must have.
    Size(String),
    /// A library or Node-API call failed for a reason that is not the input's fault.
    Internal(String),
}

impl NativeError {
    pub fn code(&self) -> &'static str {
        match self {
            NativeError::Argument(_) => "ERR_NATIVE_ARGUMENT",
            NativeError::Corrupt(_) => "ERR_NATIVE_CORRUPT",
            NativeError::Size(_) => "ERR_NATIVE_SIZE",
            NativeError::Internal(_) => "ERR_NATIVE_INTERNAL",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            NativeError::Argument(m) | NativeError::Corrupt(m) | NativeError::Size(m) | NativeError::Internal(m) => m,
        }
    }

    /// The same error with `prefix: ` in front of its message (keeps the code).
    pub fn context(self, prefix: &str) -> NativeError {
        let m = format!("{prefix}: {}", self.message());
        match self {
            NativeError::Argument(_) => NativeError::Argument(m),
            NativeError::Corrupt(_) => NativeError::Corrupt(m),
            NativeError::Size(_) => NativeError::Size(m),
            NativeError::Internal(_) => NativeError::Internal(m),
        }
    }
}

impl fmt::Display for NativeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

pub type Result<T> = std::result::Result<T, NativeError>;

pub fn arg<T>(msg: impl Into<String>) -> Result<T> {
    Err(NativeError::Argument(msg.into()))
}
