//! [`CliError`]: how a command fails, with the message for stderr and the
//! process exit code, so that `main` never needs to panic or print a
//! backtrace for bad input.

use std::fmt;

/// Exit code for an operational failure (bad input, I/O, a locked or damaged
/// directory). Matches what clap uses for a bad flag.
pub const EXIT_FAILURE: u8 = 2;
/// Exit code for "the command ran, and found problems" (`verify`, `recover`).
pub const EXIT_FINDINGS: u8 = 1;

/// A failed command: an optional message for stderr and an exit code.
///
/// `message: None` is a quiet exit, used when stdout was closed by the
/// reader (`sessionlog dump DIR | head`), which is not an error worth a word.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong, printed as `error: <message>`.
    pub message: Option<String>,
    /// The process exit code.
    pub code: u8,
}

impl CliError {
    /// An operational failure (exit code 2).
    pub fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: Some(message.into()),
            code: EXIT_FAILURE,
        }
    }

    /// A quiet exit with `code` (nothing printed).
    pub fn quiet(code: u8) -> CliError {
        CliError {
            message: None,
            code,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or(""))
    }
}

impl From<sessionlog::Error> for CliError {
    /// The library's messages already say what and where; a locked
    /// directory also gets a hint, since that is an operator's situation
    /// rather than damage.
    fn from(e: sessionlog::Error) -> CliError {
        match e {
            sessionlog::Error::Locked { .. } => CliError::new(format!(
                "{e}\nhint: stop the process that has it open (or wait for it to close it) and retry; \
                 read-only commands (stats, verify, dump, tail) work while it runs"
            )),
            other => CliError::new(other.to_string()),
        }
    }
}

/// `Result` with [`CliError`].
pub type CliResult<T> = Result<T, CliError>;
