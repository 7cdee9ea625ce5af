//! The protocol's server-side filter for `$all` reads and subscriptions: on the stream name or
//! on the event type, by prefixes or by a regular expression, with the checkpoint interval of
//! a filtered subscription.
//!
//! Regular expressions are matched as the protocol's reference server does (a match anywhere
//! in the text, so clients anchor them with `^…$` themselves). Clients send lookaheads (the
//! Python client builds exclusions as `^(?!(…))`), so they are compiled with `fancy-regex`.

use fancy_regex::Regex;
use tonic::Status;

use crate::proto::streams::read_req::options::{FilterOptions, filter_options};

/// Longest regular expression accepted, in bytes.
pub const REGEX_BYTES_MAX: usize = 4096;
/// Most prefixes accepted in one filter.
pub const PREFIXES_MAX: usize = 1024;

/// What a filter looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The event's stream name.
    StreamName,
    /// The event's type.
    EventType,
}

/// How a filter decides.
#[derive(Debug)]
enum Rule {
    Prefixes(Vec<String>),
    Regex(Box<Regex>),
}

/// A compiled filter.
#[derive(Debug)]
pub struct EventFilter {
    target: Target,
    rule: Rule,
    /// Events scanned (matching or not) between two checkpoints of a subscription.
    pub checkpoint_interval: u64,
}

impl EventFilter {
    /// Compiles the protocol's filter options; `None` when they name no filter.
    pub fn from_options(options: &FilterOptions) -> Result<Option<EventFilter>, Status> {
        let (target, expression) = match &options.filter {
            None => return Ok(None),
            Some(filter_options::Filter::StreamIdentifier(e)) => (Target::StreamName, e),
            Some(filter_options::Filter::EventType(e)) => (Target::EventType, e),
        };
        let rule = if !expression.regex.is_empty() {
            if expression.regex.len() > REGEX_BYTES_MAX {
                return Err(Status::invalid_argument("filter regex is too long"));
            }
            let regex = Regex::new(&expression.regex).map_err(|e| {
                Status::invalid_argument(format!("filter regex {:?}: {e}", expression.regex))
            })?;
            Rule::Regex(Box::new(regex))
        } else {
            if expression.prefix.len() > PREFIXES_MAX {
                return Err(Status::invalid_argument("too many filter prefixes"));
            }
            Rule::Prefixes(expression.prefix.clone())
        };
        Ok(Some(EventFilter { target, rule, checkpoint_interval: interval(options) }))
    }

    /// Whether an event of `stream` and `event_type` passes.
    pub fn matches(&self, stream: &str, event_type: &str) -> bool {
        let text = match self.target {
            Target::StreamName => stream,
            Target::EventType => event_type,
        };
        match &self.rule {
            Rule::Prefixes(prefixes) => prefixes.iter().any(|p| text.starts_with(p.as_str())),
            // A regex that fails at run time (backtracking limit) lets nothing through.
            Rule::Regex(regex) => regex.is_match(text).unwrap_or(false),
        }
    }
}

/// Events scanned between checkpoints: the window (`max`, or 1 for `count`) times the
/// multiplier, each at least 1.
fn interval(options: &FilterOptions) -> u64 {
    let window = match options.window {
        Some(filter_options::Window::Max(max)) => u64::from(max.max(1)),
        Some(filter_options::Window::Count(_)) | None => 1,
    };
    window.saturating_mul(u64::from(options.checkpoint_interval_multiplier.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::streams::read_req::options::filter_options::{Expression, Filter, Window};

    fn options(filter: Filter) -> FilterOptions {
        FilterOptions {
            filter: Some(filter),
            window: Some(Window::Max(32)),
            checkpoint_interval_multiplier: 5,
        }
    }

    fn compile(filter: Filter) -> EventFilter {
        EventFilter::from_options(&options(filter)).unwrap().unwrap()
    }

    #[test]
    fn stream_prefixes_select_by_stream_name() {
        let f = compile(Filter::StreamIdentifier(Expression {
            regex: String::new(),
            prefix: vec!["order-".into(), "cart".into()],
        }));
        assert!(f.matches("order-1", "X"));
        assert!(f.matches("carts", "X"));
        assert!(!f.matches("user-1", "order-"));
        assert_eq!(f.checkpoint_interval, 160);
    }

    #[test]
    fn event_type_regex_with_a_lookahead_excludes_system_types() {
        // The Python client's default exclusion of system events.
        let f = compile(Filter::EventType(Expression {
            regex: r"^(?!(\$.+$|PersistentConfig\d+$|Result$))".into(),
            prefix: vec![],
        }));
        assert!(f.matches("s", "OrderPlaced"));
        assert!(!f.matches("s", "$metadata"));
        assert!(!f.matches("s", "Result"));
        assert!(f.matches("s", "Results"));
    }

    #[test]
    fn a_bad_regex_is_invalid_argument() {
        let error = EventFilter::from_options(&options(Filter::EventType(Expression {
            regex: "(".into(),
            prefix: vec![],
        })))
        .unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
    }
}
