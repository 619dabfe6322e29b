//! How database failures become the ports' `StoreError`.

use diesel::result::{DatabaseErrorKind, Error as DieselError};
use tessera_app::ports::StoreError;

/// A store failure inside the adapter. A local type because diesel's transaction
/// API needs `From<diesel::result::Error>`, which `StoreError` (foreign) cannot get.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) StoreError);

pub(crate) type Outcome<T> = Result<T, Failure>;

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Self(error)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        failure.0
    }
}

impl From<DieselError> for Failure {
    fn from(error: DieselError) -> Self {
        Self(classify(&error))
    }
}

impl From<r2d2::Error> for Failure {
    fn from(error: r2d2::Error) -> Self {
        Self(StoreError::Unavailable(format!(
            "no database connection: {error}"
        )))
    }
}

/// A corrupt or unexpected stored value: a bug or a hand-edited row.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Failure {
    Failure(StoreError::Internal(format!(
        "stored {what} is invalid: {detail}"
    )))
}

/// Unique violations are told apart by constraint name (see the migrations),
/// without a shard suffix (`base_name`). Only diesel's `message()` is quoted,
/// never `details()`: the details repeat the conflicting key, which may be a
/// secret's hash.
fn classify(error: &DieselError) -> StoreError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            match violated_constraint(info.as_ref()).map(base_name) {
                Some("tickets_code_hash_unique") => StoreError::CodeTaken,
                Some(name) if name.ends_with("_hash_unique") => StoreError::DuplicateSecret,
                Some("tickets_one_active_per_subject") => StoreError::SubjectHasActiveTicket,
                Some(name) => StoreError::Internal(format!("unique constraint {name} violated")),
                None => StoreError::Internal(info.message().to_owned()),
            }
        }
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, info) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        DieselError::DatabaseError(_, info) if is_connection_loss(info.message()) => {
            StoreError::Unavailable(info.message().to_owned())
        }
        // `statement_timeout` (see `setup::SessionSettings`): the database is too
        // slow right now, which a client may retry — not a bug.
        DieselError::DatabaseError(_, info)
            if info
                .message()
                .contains("canceling statement due to statement timeout") =>
        {
            StoreError::Unavailable(info.message().to_owned())
        }
        DieselError::DatabaseError(kind, info) => {
            StoreError::Internal(format!("{kind:?}: {}", info.message()))
        }
        DieselError::BrokenTransactionManager => {
            StoreError::Unavailable("the connection's transaction state is broken".to_owned())
        }
        other => StoreError::Internal(other.to_string()),
    }
}

/// The violated constraint's name: PostgreSQL sends it as a field of the error,
/// but Citus re-raises a worker's error on the coordinator with the message alone
/// (`duplicate key value violates unique constraint "<name>_102114"`), so the
/// name is read from the message when the field is missing.
fn violated_constraint(info: &dyn diesel::result::DatabaseErrorInformation) -> Option<&str> {
    info.constraint_name().or_else(|| {
        let (_, rest) = info.message().split_once("unique constraint \"")?;
        rest.split_once('"').map(|(name, _)| name)
    })
}

/// The constraint's name as the migrations spell it. Citus reports a violation
/// by the shard's copy of the constraint, whose name carries the shard id
/// (`tickets_one_active_per_subject_102114`); none of the migrations' names ends
/// in `_<digits>`, so dropping such a tail is always safe.
pub(crate) fn base_name(name: &str) -> &str {
    match name.rsplit_once('_') {
        Some((base, shard)) if !shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    }
}

/// libpq reports a lost server through plain messages rather than a distinct kind.
pub(crate) fn is_connection_loss(message: &str) -> bool {
    [
        "server closed the connection",
        "terminating connection",
        "no connection to the server",
        "could not connect",
        "connection to server",
        "the database system is shutting down",
        "the database system is starting up",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use diesel::RunQueryDsl;

    use super::*;
    use crate::testing::TestDatabase;

    /// An error as Citus re-raises it on the coordinator: the message only.
    struct ReraisedByCitus(&'static str);

    impl diesel::result::DatabaseErrorInformation for ReraisedByCitus {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn reraised(message: &'static str) -> StoreError {
        classify(&DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new(ReraisedByCitus(message)),
        ))
    }

    #[test]
    fn a_violation_reraised_without_its_constraint_field_is_classified_by_its_message() {
        assert_eq!(
            reraised("duplicate key value violates unique constraint \"tickets_code_hash_unique_102158\""),
            StoreError::CodeTaken
        );
        assert_eq!(
            reraised(
                "duplicate key value violates unique constraint \"tickets_one_active_per_subject_102158\""
            ),
            StoreError::SubjectHasActiveTicket
        );
        assert_eq!(
            reraised("duplicate key value violates unique constraint \"api_keys_key_hash_unique_102120\""),
            StoreError::DuplicateSecret
        );
        assert!(matches!(
            reraised("duplicate key value violates unique constraint \"holds_pkey_102200\""),
            StoreError::Internal(_)
        ));
        assert!(matches!(
            reraised("something else"),
            StoreError::Internal(_)
        ));
    }

    #[test]
    fn a_shard_suffix_does_not_change_the_base_name() {
        assert_eq!(
            base_name("tickets_one_active_per_subject_102114"),
            "tickets_one_active_per_subject"
        );
        assert_eq!(
            base_name("tickets_code_hash_unique_7"),
            "tickets_code_hash_unique"
        );
        assert_eq!(
            base_name("tickets_code_hash_unique"),
            "tickets_code_hash_unique"
        );
        assert_eq!(base_name("api_keys_pkey"), "api_keys_pkey");
        assert_eq!(base_name("events_2026_12_pkey"), "events_2026_12_pkey");
        assert_eq!(base_name("trailing_"), "trailing_");
    }

    #[test]
    fn a_statement_timeout_is_unavailable_not_internal() {
        let db = TestDatabase::new();
        let pool = crate::connect_with_timeout(db.url(), 1, std::time::Duration::from_millis(100))
            .expect("a pool");
        let mut conn = pool.get().expect("a connection");
        let error = diesel::sql_query("SELECT pg_sleep(1)")
            .execute(&mut conn)
            .expect_err("cancelled");
        assert!(
            matches!(classify(&error), StoreError::Unavailable(_)),
            "{error}"
        );
    }
}
