//! The migrations write a few event types from SQL (the redemption function's
//! `ticket.redeemed` and `ticket.exhausted`): each must be a name of the one event
//! vocabulary, `tessera_domain::EventType`, or a webhook trigger on it would never
//! fire.

use tessera_domain::EventType;

/// Every single-quoted `program.*` / `ticket.*` literal in the migrations' up.sql.
fn event_literals_in_migrations() -> Vec<String> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).expect("migrations folder") {
        let up = entry.expect("an entry").path().join("up.sql");
        let Ok(sql) = std::fs::read_to_string(&up) else {
            continue;
        };
        for literal in sql.split('\'').skip(1).step_by(2) {
            if (literal.starts_with("ticket.") || literal.starts_with("program."))
                && literal
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_')
            {
                found.push(literal.to_owned());
            }
        }
    }
    found
}

#[test]
fn event_types_written_by_sql_belong_to_the_vocabulary() {
    let literals = event_literals_in_migrations();
    assert!(
        literals.iter().any(|l| l == "ticket.redeemed"),
        "the redemption function writes ticket.redeemed: {literals:?}"
    );
    for literal in literals {
        assert!(
            literal.parse::<EventType>().is_ok(),
            "{literal} is written by a migration but is not an EventType"
        );
    }
}
