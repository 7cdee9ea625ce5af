//! Exit codes and the one error type every command returns: a code a script can branch on and
//! one readable sentence for stderr. `docs/cli.md` lists the codes; keep the two in step.

use std::{fmt, io, path::Path, process::ExitCode};

use annal::{Error, ExpectedVersion};

/// What the process tells its caller when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Done, nothing wrong.
    Ok = 0,
    /// Anything not listed below (I/O failures, a store that is closed or poisoned, …).
    Other = 1,
    /// The command line or its input is invalid (clap uses 2 for bad arguments, too).
    Usage = 2,
    /// The store directory or the stream does not exist, or the stream was deleted (a
    /// tombstoned stream can be neither read nor written).
    NotFound = 3,
    /// The store is damaged: an open refused it, or `verify` found problems.
    Corruption = 4,
    /// An append's expected version did not hold, or one of its event ids was already used by
    /// a different append; nothing was written.
    Conflict = 5,
    /// Another process holds the store open for writing.
    Locked = 6,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

/// Why a command stopped early.
#[derive(Debug)]
pub enum Failure {
    /// Report `message` on stderr and exit with `exit`.
    Error {
        /// The exit code.
        exit: Exit,
        /// One sentence, without the `annal:` prefix.
        message: String,
    },
    /// Whoever read stdout went away (`annal read-all … | head`): stop quietly, exit 0.
    BrokenPipe,
}

/// What every command returns.
pub type CliResult<T = Exit> = Result<T, Failure>;

impl Failure {
    /// A failure with exit code `exit`.
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure::Error { exit, message: message.into() }
    }

    /// Invalid input (exit 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }

    /// Anything else (exit 1).
    pub fn other(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Other, message)
    }

    /// An I/O error on `path` while doing `what`, not found (exit 3) when the OS says so.
    pub fn io(what: &str, path: &Path, error: io::Error) -> Failure {
        let exit = match error.kind() {
            io::ErrorKind::NotFound => Exit::NotFound,
            _ => Exit::Other,
        };
        Failure::new(exit, format!("cannot {what} {}: {error}", path.display()))
    }

    /// Prefixes the message with what the command was doing.
    pub fn context(self, what: &str) -> Failure {
        match self {
            Failure::Error { exit, message } => {
                Failure::Error { exit, message: format!("{what}: {message}") }
            }
            Failure::BrokenPipe => Failure::BrokenPipe,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error { message, .. } => f.write_str(message),
            Failure::BrokenPipe => f.write_str("output closed"),
        }
    }
}

/// Writing to stdout failed: a closed pipe ends the command quietly, anything else is exit 1.
impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        match error.kind() {
            io::ErrorKind::BrokenPipe => Failure::BrokenPipe,
            _ => Failure::other(format!("cannot write the output: {error}")),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        let exit = match &error {
            Error::StreamNotFound { .. } | Error::StreamDeleted { .. } => Exit::NotFound,
            Error::Corruption { .. } => Exit::Corruption,
            Error::WrongExpectedVersion { .. } => Exit::Conflict,
            // One scavenge at a time is a lock within the process that holds the store; the CLI
            // holds its store alone, so this is another user of the same store, like `Locked`.
            Error::Locked { .. } | Error::ScavengeInProgress => Exit::Locked,
            Error::InvalidStreamName { .. }
            | Error::InvalidEventType { .. }
            | Error::LimitExceeded { .. }
            | Error::EmptyAppend
            | Error::DuplicateEventId { .. }
            | Error::InvalidMetadata { .. } => Exit::Usage,
            Error::EventIdConflict { .. } => Exit::Conflict,
            Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => Exit::NotFound,
            _ => Exit::Other,
        };
        let message = match &error {
            Error::WrongExpectedVersion { stream, expected, actual } => format!(
                "wrong expected version for stream {stream:?}: expected {}, actual {} \
                 (nothing was written)",
                expected_text(*expected),
                actual.map_or_else(|| "no-stream".to_owned(), |v| v.to_string()),
            ),
            Error::Locked { dir } => format!(
                "the store in {} is locked by another process (a store holds it open for \
                 writing); read-only commands (stats, verify, read, read-all, tail, backup, \
                 metadata without --set options) still work",
                dir.display()
            ),
            Error::Corruption { .. } => {
                format!("{error}; run `annal verify` on the directory for the full list")
            }
            _ => error.to_string(),
        };
        Failure::new(exit, message)
    }
}

/// An expected version as the `--expected-version` option spells it.
pub fn expected_text(expected: ExpectedVersion) -> String {
    match expected {
        ExpectedVersion::Any => "any".to_owned(),
        ExpectedVersion::NoStream => "no-stream".to_owned(),
        ExpectedVersion::StreamExists => "exists".to_owned(),
        ExpectedVersion::Exact(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_map_to_their_exit_codes() {
        let code = |e: Error| match Failure::from(e) {
            Failure::Error { exit, .. } => exit,
            Failure::BrokenPipe => Exit::Ok,
        };
        assert_eq!(code(Error::StreamNotFound { stream: "s".into() }), Exit::NotFound);
        assert_eq!(code(Error::StreamDeleted { stream: "s".into() }), Exit::NotFound);
        assert_eq!(code(Error::Locked { dir: "d".into() }), Exit::Locked);
        assert_eq!(code(Error::ScavengeInProgress), Exit::Locked);
        let invalid = Error::InvalidMetadata { stream: "s".into(), reason: "too long" };
        assert_eq!(code(invalid), Exit::Usage);
        assert_eq!(code(Error::EmptyAppend), Exit::Usage);
        assert_eq!(code(Error::Closed), Exit::Other);
        let conflict = Error::WrongExpectedVersion {
            stream: "s".into(),
            expected: ExpectedVersion::NoStream,
            actual: Some(4),
        };
        let message = Failure::from(conflict).to_string();
        assert!(message.contains("expected no-stream, actual 4"), "{message}");
    }

    #[test]
    fn a_closed_pipe_is_quiet() {
        let failure = Failure::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(failure, Failure::BrokenPipe));
    }
}
