//! Which events of `$all` a subscription delivers: by stream-name prefix, by category, by event
//! type. Events that do not match are stepped over, and the subscription's position moves past
//! them all the same.

use std::collections::HashSet;

use crate::read::RecordedEvent;

/// Selects events of `$all` by stream and by event type. The default selects everything.
///
/// An event matches when its stream matches (any of the stream prefixes or categories; every
/// stream if none is given) **and** its type matches (any of the event types; every type if none
/// is given).
///
/// ```
/// use annal::Filter;
///
/// let filter = Filter::all().category("account").event_types(["Deposited", "Withdrawn"]);
/// assert!(filter.matches_parts("account-42", "Deposited"));
/// assert!(!filter.matches_parts("account-42", "Opened"));
/// assert!(!filter.matches_parts("accounting-7", "Deposited"));
/// assert!(!filter.matches_parts("order-1", "Deposited"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    prefixes: Vec<String>,
    categories: Vec<String>,
    event_types: HashSet<String>,
}

/// The category of a stream: the part of its name before the first `-` (`account-42` →
/// `account`), or `None` if the name has no `-`.
pub fn category_of(stream: &str) -> Option<&str> {
    stream.split_once('-').map(|(category, _)| category)
}

impl Filter {
    /// Every event.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Also selects streams whose name starts with `prefix`.
    pub fn stream_prefix(mut self, prefix: impl Into<String>) -> Filter {
        self.prefixes.push(prefix.into());
        self
    }

    /// Also selects the streams of `category` (see [`category_of`]): `account` selects
    /// `account-1` and `account-x-2`, not `account` nor `accounts-1`.
    pub fn category(mut self, category: impl Into<String>) -> Filter {
        self.categories.push(category.into());
        self
    }

    /// Restricts the selection to events of these types (added to any given before).
    pub fn event_types<T: Into<String>>(mut self, types: impl IntoIterator<Item = T>) -> Filter {
        self.event_types.extend(types.into_iter().map(Into::into));
        self
    }

    /// Whether this selects every event.
    pub fn is_all(&self) -> bool {
        self.prefixes.is_empty() && self.categories.is_empty() && self.event_types.is_empty()
    }

    /// Whether an event of `event_type` in `stream` is selected.
    pub fn matches_parts(&self, stream: &str, event_type: &str) -> bool {
        let any_stream = self.prefixes.is_empty() && self.categories.is_empty();
        let stream_matches = any_stream
            || self.prefixes.iter().any(|p| stream.starts_with(p.as_str()))
            || category_of(stream).is_some_and(|c| self.categories.iter().any(|x| x == c));
        stream_matches && (self.event_types.is_empty() || self.event_types.contains(event_type))
    }

    /// Whether `event` is selected.
    pub fn matches(&self, event: &RecordedEvent) -> bool {
        self.is_all() || self.matches_parts(event.stream(), event.event_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_is_the_part_before_the_first_dash() {
        assert_eq!(category_of("account-42"), Some("account"));
        assert_eq!(category_of("account-x-2"), Some("account"));
        assert_eq!(category_of("-x"), Some(""));
        assert_eq!(category_of("account"), None);
    }

    #[test]
    fn prefixes_and_categories_are_alternatives_and_types_restrict() {
        let f = Filter::all().stream_prefix("ord").category("account");
        assert!(f.matches_parts("order-1", "A"));
        assert!(f.matches_parts("ordinal", "A"));
        assert!(f.matches_parts("account-1", "A"));
        assert!(!f.matches_parts("accounts-1", "A"));
        assert!(!f.matches_parts("account", "A"));
        let f = f.event_types(["A"]);
        assert!(f.matches_parts("order-1", "A"));
        assert!(!f.matches_parts("order-1", "B"));
        let only_types = Filter::all().event_types(["B", "C"]);
        assert!(only_types.matches_parts("anything", "C"));
        assert!(!only_types.matches_parts("anything", "A"));
        assert!(Filter::all().is_all() && !only_types.is_all());
    }
}
