//! Typed events: how a Rust event enum becomes a stored event (type name, MessagePack payload,
//! schema version in the metadata) and back, with upcasters for payloads written by older code.
//!
//! An event enum is encoded with `rmp_serde` (fields by name, so a field added with
//! `#[serde(default)]` reads old payloads). The encoding of a variant is a one-entry map from
//! the variant's name to its content; the name becomes the stored event type and only the
//! content is stored as the payload (a unit variant's content is `nil`). Decoding puts the two
//! back together, so the payload of a `Deposited { amount }` variant is exactly what a plain
//! `struct Deposited { amount }` encodes to: that is what upcasters read and write.

use std::{collections::HashMap, fmt, marker::PhantomData};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::error::Error;
use crate::{NewEvent, RecordedEvent};

/// An event enum: one variant per event type, each named as the type is stored.
///
/// ```
/// use annal::es::DomainEvent;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// enum AccountEvent { Opened { owner: String }, Deposited { amount: u64 }, Closed }
/// impl DomainEvent for AccountEvent {
///     const TYPES: &'static [&'static str] = &["Opened", "Deposited", "Closed"];
/// }
/// ```
pub trait DomainEvent: Serialize + DeserializeOwned + Send + 'static {
    /// Every variant name. A stored type not in this list is [`Error::UnknownEventType`]; an
    /// event whose variant is missing here is refused when it is encoded.
    const TYPES: &'static [&'static str];

    /// The schema version the code writes and reads for `event_type` (default 1). Raise it when
    /// a variant's shape changes, and register an upcaster from the old version.
    fn schema_version(event_type: &str) -> u16 {
        let _ = event_type;
        1
    }
}

/// What the layer keeps in an event's metadata. Absent (empty metadata) means schema 1.
#[derive(Serialize, Deserialize)]
struct Meta {
    schema: u16,
}

type Upcast = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

/// Encodes and decodes the events of `E`, upcasting old payloads on the way in.
pub struct Codec<E> {
    /// By (event type, schema version it reads): turns that version's payload into the next.
    upcasters: HashMap<(String, u16), Upcast>,
    _events: PhantomData<fn() -> E>,
}

impl<E: DomainEvent> Default for Codec<E> {
    fn default() -> Self {
        Codec { upcasters: HashMap::new(), _events: PhantomData }
    }
}

impl<E> fmt::Debug for Codec<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut keys: Vec<_> = self.upcasters.keys().collect();
        keys.sort();
        f.debug_struct("Codec").field("upcasters", &keys).finish()
    }
}

impl<E: DomainEvent> Codec<E> {
    /// A codec without upcasters.
    pub fn new() -> Self {
        Codec::default()
    }

    /// Registers how a payload of `event_type` at schema version `from` becomes version
    /// `from + 1`: it is decoded as `Old`, passed to `upcast`, and encoded from `New`. Chain
    /// several to cross several versions.
    pub fn with_upcaster<Old, New>(
        mut self,
        event_type: &str,
        from: u16,
        upcast: impl Fn(Old) -> New + Send + Sync + 'static,
    ) -> Self
    where
        Old: DeserializeOwned,
        New: Serialize,
    {
        let step = move |bytes: &[u8]| {
            let old = rmp_serde::from_slice::<Old>(bytes).map_err(|e| e.to_string())?;
            rmp_serde::to_vec_named(&upcast(old)).map_err(|e| e.to_string())
        };
        self.upcasters.insert((event_type.to_owned(), from), Box::new(step));
        self
    }

    /// The stored form of `event`: its type name, its content as the payload, and its schema
    /// version in the metadata.
    pub fn encode(&self, event: &E) -> Result<NewEvent, Error> {
        let bytes = rmp_serde::to_vec_named(event).map_err(|e| Error::Encode(e.to_string()))?;
        let (event_type, content) = split_variant(&bytes).ok_or_else(|| {
            Error::Encode("an event must be a variant of an enum (a one-entry map)".to_owned())
        })?;
        if !E::TYPES.contains(&event_type) {
            return Err(Error::Encode(format!("variant {event_type:?} is missing in TYPES")));
        }
        let schema = E::schema_version(event_type);
        let meta = rmp_serde::to_vec_named(&Meta { schema }).expect("a struct of one integer");
        Ok(NewEvent::new(event_type, content).with_metadata(meta))
    }

    /// The event recorded as `recorded`, upcast to the current schema version.
    pub fn decode(&self, recorded: &RecordedEvent) -> Result<E, Error> {
        let event_type = recorded.event_type();
        let position = recorded.position().get();
        let Some(&known) = E::TYPES.iter().find(|t| **t == event_type) else {
            return Err(Error::UnknownEventType { event_type: event_type.to_owned(), position });
        };
        let fail =
            |reason: String| Error::Decode { event_type: event_type.to_owned(), position, reason };
        let mut schema = match recorded.metadata() {
            [] => 1,
            meta => rmp_serde::from_slice::<Meta>(meta).map_err(|e| fail(e.to_string()))?.schema,
        };
        let current = E::schema_version(known);
        if schema > current {
            return Err(fail(format!("schema {schema} is newer than this code's {current}")));
        }
        let mut content = recorded.data().to_vec();
        while schema < current {
            let upcast = self.upcasters.get(&(known.to_owned(), schema));
            let upcast = upcast.ok_or_else(|| fail(format!("no upcaster from schema {schema}")))?;
            content = upcast(&content).map_err(|e| fail(format!("upcast from {schema}: {e}")))?;
            schema += 1;
        }
        let bytes = join_variant(known, &content);
        rmp_serde::from_slice(&bytes).map_err(|e| fail(e.to_string()))
    }
}

/// The variant name and content of an encoded enum value: `{name: content}`, or a bare `name`
/// for a unit variant (content `nil`).
fn split_variant(bytes: &[u8]) -> Option<(&str, Vec<u8>)> {
    const FIXMAP_1: u8 = 0x81;
    const NIL: u8 = 0xc0;
    match bytes.first()? {
        &FIXMAP_1 => {
            let (name, len) = read_str(&bytes[1..])?;
            Some((name, bytes[1 + len..].to_vec()))
        }
        _ => {
            let (name, len) = read_str(bytes)?;
            (len == bytes.len()).then(|| (name, vec![NIL]))
        }
    }
}

/// The encoding `{name: content}` of an enum variant.
fn join_variant(name: &str, content: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(content.len() + name.len() + 6);
    bytes.push(0x81);
    rmp_serde::encode::write(&mut bytes, name).expect("writing to a Vec cannot fail");
    bytes.extend_from_slice(content);
    bytes
}

/// A MessagePack string at the start of `bytes`, and the bytes it takes.
fn read_str(bytes: &[u8]) -> Option<(&str, usize)> {
    let (len, header) = match *bytes.first()? {
        m @ 0xa0..=0xbf => (usize::from(m & 0x1f), 1),
        0xd9 => (usize::from(*bytes.get(1)?), 2),
        0xda => (usize::from(u16::from_be_bytes(bytes.get(1..3)?.try_into().ok()?)), 3),
        0xdb => (u32::from_be_bytes(bytes.get(1..5)?.try_into().ok()?) as usize, 5),
        _ => return None,
    };
    let name = std::str::from_utf8(bytes.get(header..header + len)?).ok()?;
    Some((name, header + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Ev {
        Unit,
        Named { a: u32, b: String },
        Tuple(u8, u8),
    }

    #[test]
    fn variants_split_and_join_back_to_the_same_bytes() {
        let long = "x".repeat(300);
        for ev in [Ev::Unit, Ev::Named { a: 7, b: long }, Ev::Tuple(1, 2)] {
            let bytes = rmp_serde::to_vec_named(&ev).unwrap();
            let (name, content) = split_variant(&bytes).unwrap();
            let back: Ev = rmp_serde::from_slice(&join_variant(name, &content)).unwrap();
            assert_eq!(back, ev);
        }
        assert!(split_variant(&rmp_serde::to_vec_named(&5u32).unwrap()).is_none());
    }
}
