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

/// Unique violations are told apart by constraint name (see the migrations).
/// Only diesel's `message()` is quoted, never `details()`: the details repeat the
/// conflicting key, which may be a secret's hash.
fn classify(error: &DieselError) -> StoreError {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            match info.constraint_name() {
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
