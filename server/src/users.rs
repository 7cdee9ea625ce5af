//! The users file for basic authentication: who may call, each with a salted PBKDF2 hash of
//! their password (never the password itself), and the check of a name and password
//! against it.
//!
//! One user per line, `NAME:pbkdf2-sha256:ITERATIONS:SALT:HASH` (salt and hash in standard
//! base64 with padding, the hash 32 bytes of PBKDF2-HMAC-SHA256); blank lines and lines
//! starting with `#` are skipped. `annal-server --hash-password NAME` prints such a line for a
//! password read from standard input ([`hash_line`]).

use std::{collections::HashMap, num::NonZeroU32, path::Path};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use ring::{pbkdf2, rand::SecureRandom as _};

/// The scheme named in each line.
const SCHEME: &str = "pbkdf2-sha256";

/// Iterations [`hash_line`] uses unless told otherwise. A check costs about this many
/// HMAC-SHA256 calls (tens of milliseconds); the server checks a header once and remembers
/// the outcome, so clients pay it once per credential, and a guesser pays it every time.
pub const ITERATIONS_DEFAULT: u32 = 100_000;

/// Bytes of salt [`hash_line`] draws.
const SALT_BYTES: usize = 16;

/// Bytes of a PBKDF2-HMAC-SHA256 output.
const HASH_BYTES: usize = 32;

/// Most users a file may list (a limit on what a check may have to look through).
pub const USERS_MAX: usize = 10_000;

/// Why a users file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read.
    #[error("cannot read the users file {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `NAME:pbkdf2-sha256:ITERATIONS:SALT:HASH`.
    #[error("users file line {line}: {reason}")]
    BadLine {
        /// 1-based.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A name appears twice.
    #[error("users file line {line}: user {name:?} is listed twice")]
    Duplicate {
        /// 1-based.
        line: usize,
        /// The name.
        name: String,
    },
    /// No user is listed (the server would refuse every call).
    #[error("the users file lists no user")]
    Empty,
    /// More than [`USERS_MAX`] users.
    #[error("the users file lists more than {USERS_MAX} users")]
    TooMany,
}

/// One user's salted password hash.
struct Credential {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// The users allowed to call, by name.
pub struct Users {
    by_name: HashMap<String, Credential>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").field("count", &self.by_name.len()).finish_non_exhaustive()
    }
}

impl Users {
    /// Reads and parses the users file at `path`.
    pub fn from_file(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Unreadable {
            path: path.display().to_string(),
            source,
        })?;
        Users::parse(&text)
    }

    /// Parses the text of a users file.
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut by_name = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: &str| UsersError::BadLine { line: index + 1, reason: reason.into() };
            let (name, credential) = parse_line(line).map_err(bad)?;
            if by_name.contains_key(name) {
                return Err(UsersError::Duplicate { line: index + 1, name: name.to_owned() });
            }
            if by_name.len() == USERS_MAX {
                return Err(UsersError::TooMany);
            }
            by_name.insert(name.to_owned(), credential);
        }
        if by_name.is_empty() {
            return Err(UsersError::Empty);
        }
        Ok(Users { by_name })
    }

    /// Whether `password` is `name`'s (in constant time over the hash; an unknown name costs
    /// no derivation, which tells a timing observer only that the name is unknown).
    pub fn check(&self, name: &str, password: &str) -> bool {
        let Some(credential) = self.by_name.get(name) else { return false };
        pbkdf2::verify(
            pbkdf2::PBKDF2_HMAC_SHA256,
            credential.iterations,
            &credential.salt,
            password.as_bytes(),
            &credential.hash,
        )
        .is_ok()
    }
}

fn parse_line(line: &str) -> Result<(&str, Credential), &'static str> {
    let fields: Vec<&str> = line.split(':').collect();
    let [name, scheme, iterations, salt, hash] = fields[..] else {
        return Err("expected NAME:pbkdf2-sha256:ITERATIONS:SALT:HASH");
    };
    if name.is_empty() {
        return Err("the name is empty");
    }
    if scheme != SCHEME {
        return Err("the only scheme is pbkdf2-sha256");
    }
    let iterations = iterations
        .parse::<NonZeroU32>()
        .map_err(|_| "ITERATIONS is not a number from 1 to 4294967295")?;
    let salt = BASE64.decode(salt).map_err(|_| "SALT is not base64")?;
    let hash = BASE64.decode(hash).map_err(|_| "HASH is not base64")?;
    if hash.len() != HASH_BYTES {
        return Err("HASH is not 32 bytes");
    }
    Ok((name, Credential { iterations, salt, hash }))
}

/// A users-file line for `name` with `password`, hashed with a fresh random salt over
/// `iterations` rounds. Fails if `name` is empty or holds a `:`, or if `iterations` is 0.
pub fn hash_line(name: &str, password: &str, iterations: u32) -> Result<String, &'static str> {
    if name.is_empty() || name.contains(':') {
        return Err("a user name must be non-empty and hold no ':'");
    }
    let rounds = NonZeroU32::new(iterations).ok_or("iterations must be at least 1")?;
    let mut salt = [0u8; SALT_BYTES];
    ring::rand::SystemRandom::new().fill(&mut salt).map_err(|_| "no system randomness")?;
    let mut hash = [0u8; HASH_BYTES];
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, rounds, &salt, password.as_bytes(), &mut hash);
    Ok(format!("{name}:{SCHEME}:{iterations}:{}:{}", BASE64.encode(salt), BASE64.encode(hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_hashed_line_checks_its_password_only() {
        let text = format!("# ops\n\n{}\n", hash_line("ops", "s3cret", 10).unwrap());
        let users = Users::parse(&text).unwrap();
        assert!(users.check("ops", "s3cret"));
        assert!(!users.check("ops", "s3cret "));
        assert!(!users.check("other", "s3cret"));
    }

    #[test]
    fn users_bad_files_are_refused_with_their_line() {
        let line = hash_line("a", "p", 1).unwrap();
        let twice = format!("{line}\n{line}\n");
        assert!(matches!(Users::parse(&twice), Err(UsersError::Duplicate { line: 2, .. })));
        assert!(matches!(Users::parse("# none\n"), Err(UsersError::Empty)));
        let plain = Users::parse("\nadmin:changeit\n");
        assert!(matches!(plain, Err(UsersError::BadLine { line: 2, .. })), "{plain:?}");
        let zero = line.replacen(":1:", ":0:", 1);
        assert!(matches!(Users::parse(&zero), Err(UsersError::BadLine { line: 1, .. })));
        assert!(hash_line("a:b", "p", 1).is_err());
    }
}
