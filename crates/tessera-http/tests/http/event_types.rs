//! The event vocabulary is one enum, and the API reference lists exactly its names.

use std::collections::BTreeSet;

use tessera_domain::EventType;

/// The backquoted names between the `event-types` markers of docs/api.md.
fn documented_event_types() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md");
    let doc = std::fs::read_to_string(path).expect("docs/api.md is readable");
    let start = doc.find("<!-- event-types -->").expect("start marker");
    let end = doc.find("<!-- /event-types -->").expect("end marker");
    doc[start..end]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_enum_and_the_api_reference_name_the_same_event_types() {
    let enum_names: BTreeSet<String> = EventType::ALL
        .iter()
        .map(|kind| kind.as_str().to_owned())
        .collect();
    let documented = documented_event_types();
    assert_eq!(
        documented.len(),
        16,
        "the list in docs/api.md: {documented:?}"
    );
    assert_eq!(enum_names, documented);
}

#[test]
fn every_documented_name_parses_to_the_variant_that_prints_it() {
    for name in documented_event_types() {
        let kind: EventType = name.parse().expect("a documented name parses");
        assert_eq!(kind.as_str(), name);
    }
}
