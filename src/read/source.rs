//! What consecutive events of a read share: the segment view their bytes are in, and their
//! stream name and event type, checked to be UTF-8 once for all of them.

use std::sync::Arc;

use crate::{format::Record, io::ReadView};

use super::text::TextCache;

/// A segment view and, when the read expects it to repeat, the text of the events that point
/// into it through this source: every event holding a source with text has exactly that stream
/// name and event type in its record. One reference count per event keeps both alive, and the
/// text accessors of an event whose source has text neither decode nor check its bytes.
pub(crate) struct Source {
    view: Arc<dyn ReadView>,
    /// `None` in a source for records whose text is read from their bytes on each access.
    text: Option<TextCache>,
}

impl Source {
    /// The view the events' bytes are in.
    #[inline]
    pub(super) fn view(&self) -> &Arc<dyn ReadView> {
        &self.view
    }

    /// The events' stream name, if this source holds it.
    #[inline]
    pub(super) fn stream(&self) -> Option<&str> {
        self.text.as_ref().map(TextCache::stream)
    }

    /// The events' event type, if this source holds it.
    #[inline]
    pub(super) fn event_type(&self) -> Option<&str> {
        self.text.as_ref().map(TextCache::event_type)
    }
}

/// The source a read hands to the events it decodes: the last one, while the records keep its
/// view and text (the events of one append share both, and a log's names repeat); else the last
/// one refilled in place if no event holds it any more; else a new one with the record's text
/// if its append goes on after it. A record that ends its append, while the events before it
/// are all kept, gets a source without text (one per view): a log of single-event appends read
/// into a `Vec` would otherwise cost an allocation per event for text that never repeats.
#[derive(Default)]
pub(crate) struct Sources {
    last: Option<Arc<Source>>,
    bare: Option<Arc<Source>>,
}

impl Sources {
    /// The source for `record`, a record of `view`.
    #[inline]
    pub(crate) fn get(&mut self, view: &Arc<dyn ReadView>, record: &Record<'_>) -> &Arc<Source> {
        let text = record.text_bytes();
        let holds = |s: &Arc<Source>| {
            Arc::ptr_eq(&s.view, view) && s.text.as_ref().is_some_and(|t| t.holds(text))
        };
        if !self.last.as_ref().is_some_and(holds) && !self.refill(view, text, record.batch_left()) {
            return self.bare(view);
        }
        self.last.as_ref().expect("the last source holds the record's text")
    }

    /// Makes the last source one of `view` with `text`: refilled in place if nothing else holds
    /// it, new if there is none yet or the record's append has `batch_left` more records after
    /// it (the events that hold the old one keep their text). `false` if neither.
    #[inline(never)]
    fn refill(&mut self, view: &Arc<dyn ReadView>, text: (&[u8], usize), batch_left: u16) -> bool {
        if let Some(last) = self.last.as_mut() {
            match Arc::get_mut(last) {
                Some(source) => {
                    if !Arc::ptr_eq(&source.view, view) {
                        source.view = Arc::clone(view);
                    }
                    source.text.get_or_insert_with(TextCache::default).fill(text);
                    return true;
                }
                None if batch_left == 0 => return false,
                None => {}
            }
        }
        let mut cache = TextCache::default();
        cache.fill(text);
        self.last = Some(Arc::new(Source { view: Arc::clone(view), text: Some(cache) }));
        true
    }

    /// The source without text for records of `view`: one per view.
    #[inline]
    pub(crate) fn bare(&mut self, view: &Arc<dyn ReadView>) -> &Arc<Source> {
        if !self.bare.as_ref().is_some_and(|s| Arc::ptr_eq(&s.view, view)) {
            self.bare = Some(Arc::new(Source { view: Arc::clone(view), text: None }));
        }
        self.bare.as_ref().expect("a bare source of the view")
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::format::{
        EventParts, Layout, RecordFields, decode_record, encode_record, seal_record,
    };

    /// A sealed record of `stream` and `event_type` with `batch_left` records of its append
    /// after it, appended to `buf`; returns its offset.
    fn push_record(buf: &mut Vec<u8>, (stream, event_type, batch_left): Rec) -> usize {
        let at = buf.len();
        let parts = EventParts::new(stream, Uuid::from_u128(1), event_type, b"", b"data");
        encode_record(buf, &parts).unwrap();
        let fields = RecordFields {
            position: 0,
            version: 0,
            timestamp_us: 0,
            batch_left,
            sequence: 0,
            epoch: 0,
        };
        seal_record(&mut buf[at..], fields).unwrap();
        at
    }

    type Rec = (&'static str, &'static str, u64);

    /// A view holding `records`, and a way to decode the `i`th.
    struct Log {
        view: Arc<dyn ReadView>,
        offsets: Vec<usize>,
    }

    impl Log {
        fn new(records: &[Rec]) -> Log {
            let mut buf = Vec::new();
            let offsets = records.iter().map(|&r| push_record(&mut buf, r)).collect();
            Log { view: Arc::new(buf), offsets }
        }

        fn source(&self, sources: &mut Sources, i: usize) -> Arc<Source> {
            let record = decode_record(self.view.bytes(), self.offsets[i], Layout::V3).unwrap();
            Arc::clone(sources.get(&self.view, &record))
        }
    }

    fn text(source: &Source) -> Option<(&str, &str)> {
        Some((source.stream()?, source.event_type()?))
    }

    #[test]
    fn sources_held_source_keeps_its_text_when_the_next_record_differs() {
        let log = Log::new(&[("order-1", "Placed", 0), ("order-2", "Paid", 1)]);
        let mut sources = Sources::default();
        let held = log.source(&mut sources, 0);
        let next = log.source(&mut sources, 1);
        assert!(!Arc::ptr_eq(&held, &next), "a held source is never changed");
        assert_eq!(text(&held), Some(("order-1", "Placed")));
        assert_eq!(text(&next), Some(("order-2", "Paid")));
    }

    #[test]
    fn sources_source_no_event_holds_is_changed_in_place() {
        let log = Log::new(&[("order-1", "Placed", 1), ("order-1", "Placed", 0), ("b", "Paid", 0)]);
        let mut sources = Sources::default();
        let first = Arc::as_ptr(&log.source(&mut sources, 0));
        let held = log.source(&mut sources, 1);
        assert_eq!(Arc::as_ptr(&held), first, "the same text shares the source");
        drop(held);
        let third = log.source(&mut sources, 2);
        assert_eq!(Arc::as_ptr(&third), first, "a source nothing holds is reused");
        assert_eq!(text(&third), Some(("b", "Paid")));
    }

    #[test]
    fn sources_kept_single_event_appends_share_a_source_without_text() {
        // The first record of a read gets its text even if its append ends with it.
        let log = Log::new(&[("a", "Placed", 0), ("b", "Paid", 0), ("c", "Paid", 0)]);
        let mut sources = Sources::default();
        let kept = [0, 1, 2].map(|i| log.source(&mut sources, i));
        assert_eq!(text(&kept[0]), Some(("a", "Placed")));
        assert!(kept[1].stream().is_none() && kept[1].event_type().is_none());
        assert!(Arc::ptr_eq(&kept[1], &kept[2]), "one source without text per view");
        assert!(Arc::ptr_eq(kept[2].view(), &log.view));
    }

    #[test]
    fn sources_same_text_in_another_view_gets_that_view() {
        let (a, b) = (Log::new(&[("order-1", "Placed", 0)]), Log::new(&[("order-1", "Placed", 0)]));
        let mut sources = Sources::default();
        let held = a.source(&mut sources, 0);
        let other = b.source(&mut sources, 0);
        assert!(Arc::ptr_eq(other.view(), &b.view) && Arc::ptr_eq(held.view(), &a.view));
        drop((held, other));
        let again = a.source(&mut sources, 0);
        assert!(Arc::ptr_eq(again.view(), &a.view));
        assert_eq!(text(&again), Some(("order-1", "Placed")));
    }
}
