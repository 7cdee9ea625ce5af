//! The rule for names that become part of a file name (persistent subscriptions' checkpoint
//! files, aggregates' snapshot files): short, portable, and never a hidden or relative name.

/// Longest such name, in bytes.
pub(crate) const FILE_NAME_BYTES_MAX: usize = 100;

/// Longest file name the file systems annal runs on take (`NAME_MAX` of ext4, XFS, Btrfs, APFS
/// and NTFS), in bytes: every file name built from such a name, suffixes included, must fit.
pub(crate) const FILE_NAME_FIELD_BYTES_MAX: usize = 255;

/// Why `name` cannot be part of a file name, or `None` if it can: it must be 1 to 100 ASCII
/// letters, digits, `-`, `_` or `.`, not starting with `.`.
pub(crate) fn file_name_problem(name: &str) -> Option<&'static str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > FILE_NAME_BYTES_MAX {
        Some("must be at most 100 bytes")
    } else if !name.chars().all(allowed) {
        Some("may hold only ASCII letters, digits, '-', '_' and '.'")
    } else if name.starts_with('.') {
        Some("must not start with '.'")
    } else {
        None
    }
}
