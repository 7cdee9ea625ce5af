//! What consecutive events of a read share: the segment view their bytes are in, and their
//! stream name and event type, checked to be UTF-8 once for all of them.

use std::sync::Arc;

use crate::{format::Record, io::ReadView};

use super::text::TextCache;

/// A segment view and the text of the events that point into it through this source: every
/// event holding it has exactly this stream name and event type in its record. One reference
/// count per event keeps both alive, and an event's text accessors neither decode nor check
/// its bytes.
pub(crate) struct Source {
    view: Arc<dyn ReadView>,
    text: TextCache,
}

impl Source {
    /// The view the events' bytes are in.
    #[inline]
    pub(super) fn view(&self) -> &Arc<dyn ReadView> {
        &self.view
    }

    /// The events' stream name.
    #[inline]
    pub(super) fn stream(&self) -> &str {
        self.text.stream()
    }

    /// The events' event type.
    #[inline]
    pub(super) fn event_type(&self) -> &str {
        self.text.event_type()
    }
}

/// The source a read hands to the events it decodes: the last one, while the records keep its
/// view and text (the events of one append share both, and a log's names repeat), else the
/// last one changed in place if no event holds it any more, else a new one.
#[derive(Default)]
pub(crate) struct Sources {
    last: Option<Arc<Source>>,
}

impl Sources {
    /// The source for `record`, a record of `view`.
    #[inline]
    pub(crate) fn get(&mut self, view: &Arc<dyn ReadView>, record: &Record<'_>) -> &Arc<Source> {
        let text = record.text_bytes();
        let holds = |s: &Arc<Source>| Arc::ptr_eq(&s.view, view) && s.text.holds(text);
        if !self.last.as_ref().is_some_and(holds) {
            self.replace(view, text);
        }
        self.last.as_ref().expect("a source was just made")
    }

    /// Makes the last source one of `view` with `text`: changed in place if nothing else holds
    /// it, new otherwise (the events that hold the old one keep their text).
    #[inline(never)]
    fn replace(&mut self, view: &Arc<dyn ReadView>, text: (&[u8], usize)) {
        match self.last.as_mut().and_then(Arc::get_mut) {
            Some(source) => {
                if !Arc::ptr_eq(&source.view, view) {
                    source.view = Arc::clone(view);
                }
                source.text.fill(text);
            }
            None => {
                let mut source = Source { view: Arc::clone(view), text: TextCache::default() };
                source.text.fill(text);
                self.last = Some(Arc::new(source));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::format::{
        EventParts, Layout, RecordFields, decode_record, encode_record, seal_record,
    };

    /// A sealed record of `stream` and `event_type` appended to `buf`; returns its offset.
    fn push_record(buf: &mut Vec<u8>, stream: &str, event_type: &str) -> usize {
        let at = buf.len();
        let parts = EventParts::new(stream, Uuid::from_u128(1), event_type, b"", b"data");
        encode_record(buf, &parts).unwrap();
        let fields = RecordFields {
            position: 0,
            version: 0,
            timestamp_us: 0,
            batch_left: 0,
            sequence: 0,
            epoch: 0,
        };
        seal_record(&mut buf[at..], fields).unwrap();
        at
    }

    fn view_of(records: &[(&str, &str)]) -> (Arc<dyn ReadView>, Vec<usize>) {
        let mut buf = Vec::new();
        let offsets = records.iter().map(|(s, t)| push_record(&mut buf, s, t)).collect();
        (Arc::new(buf), offsets)
    }

    fn text(source: &Source) -> (&str, &str) {
        (source.stream(), source.event_type())
    }

    #[test]
    fn sources_held_source_keeps_its_text_when_the_next_record_differs() {
        let (view, at) = view_of(&[("order-1", "Placed"), ("order-2", "Paid")]);
        let mut sources = Sources::default();
        let first = decode_record(view.bytes(), at[0], Layout::V3).unwrap();
        let held = Arc::clone(sources.get(&view, &first));
        let second = decode_record(view.bytes(), at[1], Layout::V3).unwrap();
        let next = sources.get(&view, &second);
        assert!(!Arc::ptr_eq(&held, next), "a held source is never changed");
        assert_eq!(text(&held), ("order-1", "Placed"));
        assert_eq!(text(next), ("order-2", "Paid"));
    }

    #[test]
    fn sources_source_no_event_holds_is_changed_in_place() {
        let (view, at) = view_of(&[("order-1", "Placed"), ("order-1", "Placed"), ("b", "Paid")]);
        let mut sources = Sources::default();
        let record = |i: usize| decode_record(view.bytes(), at[i], Layout::V3).unwrap();
        let first = Arc::as_ptr(sources.get(&view, &record(0)));
        let held = Arc::clone(sources.get(&view, &record(1)));
        assert_eq!(Arc::as_ptr(&held), first, "the same text shares the source");
        drop(held);
        let third = sources.get(&view, &record(2));
        assert_eq!(Arc::as_ptr(third), first, "a source nothing holds is reused");
        assert_eq!(text(third), ("b", "Paid"));
    }

    #[test]
    fn sources_same_text_in_another_view_gets_that_view() {
        let (a, at_a) = view_of(&[("order-1", "Placed")]);
        let (b, at_b) = view_of(&[("order-1", "Placed")]);
        let mut sources = Sources::default();
        let held =
            Arc::clone(sources.get(&a, &decode_record(a.bytes(), at_a[0], Layout::V3).unwrap()));
        let other = sources.get(&b, &decode_record(b.bytes(), at_b[0], Layout::V3).unwrap());
        assert!(Arc::ptr_eq(other.view(), &b) && Arc::ptr_eq(held.view(), &a));
        drop(held);
        let again = sources.get(&a, &decode_record(a.bytes(), at_a[0], Layout::V3).unwrap());
        assert!(Arc::ptr_eq(again.view(), &a));
    }
}
