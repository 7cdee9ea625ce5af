//! Typed events: round trips, typed errors for unknown types and bad payloads, and schema
//! evolution through upcasters.

use annal::{
    ExpectedVersion, NewEvent, StreamVersion,
    es::{Codec, DomainEvent, Error},
};
use serde::{Deserialize, Serialize};

use crate::es_model::{AccountEvent, store};

fn write_and_read_back(events: &[NewEvent]) -> Vec<annal::RecordedEvent> {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store.append("account-1", ExpectedVersion::Any, events.to_vec()).unwrap();
    let read = store.read_stream_forward("account-1", StreamVersion::START, usize::MAX).unwrap();
    read.map(Result::unwrap).collect()
}

#[test]
fn codec_round_trip_keeps_every_variant_and_stores_its_type_name() {
    let codec = Codec::<AccountEvent>::new();
    let events = vec![
        AccountEvent::Opened { owner: "ann".into() },
        AccountEvent::Deposited { amount: 7 },
        AccountEvent::Withdrawn { amount: u64::MAX },
        AccountEvent::Frozen,
    ];
    let encoded: Vec<_> = events.iter().map(|e| codec.encode(e).unwrap()).collect();
    let recorded = write_and_read_back(&encoded);
    let types: Vec<_> = recorded.iter().map(|r| r.event_type().to_owned()).collect();
    assert_eq!(types, ["Opened", "Deposited", "Withdrawn", "Frozen"]);
    // The payload is the variant's content alone, as a plain struct encodes it.
    #[derive(Deserialize)]
    struct Deposited {
        amount: u64,
    }
    assert_eq!(rmp_serde::from_slice::<Deposited>(recorded[1].data()).unwrap().amount, 7);
    let decoded: Vec<_> = recorded.iter().map(|r| codec.decode(r).unwrap()).collect();
    assert_eq!(decoded, events);
}

#[test]
fn codec_unknown_type_and_undecodable_payload_are_typed_errors() {
    let recorded = write_and_read_back(&[
        NewEvent::new("Mystery", vec![0xc0]),
        NewEvent::new("Deposited", b"not msgpack at all".to_vec()),
        NewEvent::new("Deposited", rmp_serde::to_vec_named(&("wrong", "shape")).unwrap()),
        NewEvent::new("Deposited", vec![0xc0]).with_metadata(b"\xff\x00".to_vec()),
    ]);
    let codec = Codec::<AccountEvent>::new();
    match codec.decode(&recorded[0]) {
        Err(Error::UnknownEventType { event_type, position: 0 }) => {
            assert_eq!(event_type, "Mystery")
        }
        other => panic!("expected UnknownEventType, got {other:?}"),
    }
    for (at, r) in recorded.iter().enumerate().skip(1) {
        match codec.decode(r) {
            Err(Error::Decode { event_type, position, .. }) => {
                assert_eq!((event_type.as_str(), position), ("Deposited", at as u64));
            }
            other => panic!("expected Decode at {at}, got {other:?}"),
        }
    }
}

#[test]
fn codec_refuses_to_encode_a_variant_missing_from_types() {
    #[derive(Serialize, Deserialize)]
    enum Partial {
        Listed,
        Forgotten { x: u8 },
    }
    impl DomainEvent for Partial {
        const TYPES: &'static [&'static str] = &["Listed"];
    }
    let codec = Codec::<Partial>::new();
    assert!(codec.encode(&Partial::Listed).is_ok());
    assert!(matches!(codec.encode(&Partial::Forgotten { x: 1 }), Err(Error::Encode(_))));
}

/// What the code wrote before the currency was added.
mod v1 {
    use super::*;

    #[derive(Serialize, Deserialize)]
    pub enum Event {
        Deposited { amount: u64 },
    }

    impl DomainEvent for Event {
        const TYPES: &'static [&'static str] = &["Deposited"];
    }
}

/// Today's code: it knows only the v2 shape, and how to upcast a v1 payload.
mod v2 {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    pub enum Event {
        Deposited { cents: u64, currency: String },
    }

    impl DomainEvent for Event {
        const TYPES: &'static [&'static str] = &["Deposited"];
        fn schema_version(event_type: &str) -> u16 {
            if event_type == "Deposited" { 2 } else { 1 }
        }
    }

    #[derive(Deserialize)]
    pub struct DepositedV1 {
        pub amount: u64,
    }

    #[derive(Serialize)]
    pub struct DepositedV2 {
        pub cents: u64,
        pub currency: String,
    }

    pub fn codec() -> Codec<Event> {
        Codec::new().with_upcaster("Deposited", 1, |old: DepositedV1| DepositedV2 {
            cents: old.amount * 100,
            currency: "EUR".into(),
        })
    }
}

#[test]
fn codec_v1_store_is_read_by_v2_only_code_through_the_upcaster() {
    let dir = tempfile::tempdir().unwrap();
    let old = Codec::<v1::Event>::new();
    {
        let store = store(dir.path());
        let events = [3, 5].map(|amount| old.encode(&v1::Event::Deposited { amount }).unwrap());
        store.append("account-1", ExpectedVersion::NoStream, events).unwrap();
        store.close();
    }
    let store = store(dir.path());
    let new = v2::codec();
    store
        .append(
            "account-1",
            ExpectedVersion::Any,
            [new.encode(&v2::Event::Deposited { cents: 1, currency: "USD".into() }).unwrap()],
        )
        .unwrap();
    let read = store.read_stream_forward("account-1", StreamVersion::START, usize::MAX).unwrap();
    let recorded: Vec<_> = read.map(Result::unwrap).collect();
    let decoded: Vec<_> = recorded.iter().map(|r| new.decode(r).unwrap()).collect();
    let deposit = |cents, currency: &str| v2::Event::Deposited { cents, currency: currency.into() };
    assert_eq!(decoded, [deposit(300, "EUR"), deposit(500, "EUR"), deposit(1, "USD")]);
    // Without the upcaster the v1 payload is a typed error, and v1 code refuses v2 events.
    let bare = Codec::<v2::Event>::new();
    assert!(matches!(bare.decode(&recorded[0]), Err(Error::Decode { .. })));
    assert!(matches!(old.decode(&recorded[2]), Err(Error::Decode { .. })));
}
