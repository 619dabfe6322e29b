//! Getting a database ready: create it if missing, pool connections to it, and
//! bring its schema up to date with the embedded migrations.

use std::time::Duration;

use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool};
use diesel::sql_types::{BigInt, Text};
use diesel::{sql_query, Connection, PgConnection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::models::Total;
use crate::PgPool;

/// The workspace's migrations, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Serialises concurrent `run_migrations` calls across processes ("tessera" + 1).
const MIGRATION_LOCK: i64 = 0x7465_7373_6572_6101;

/// How long a request waits for a pooled connection before the store reports the
/// database as unavailable.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one statement may run before PostgreSQL cancels it, unless the caller
/// says otherwise: no request should hold a connection (and a row lock) for longer.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Session settings applied to every pooled connection when it is opened.
#[derive(Debug, Clone, Copy)]
struct SessionSettings {
    statement_timeout: Duration,
}

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for SessionSettings {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        // Hand-written: a session setting, on no table of `schema.rs`.
        sql_query("SELECT set_config('statement_timeout', $1, false)")
            .bind::<Text, _>(format!("{}ms", self.statement_timeout.as_millis()))
            .execute(conn)
            .map(|_| ())
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Why the database could not be made ready. Messages name the server with its
/// password masked, and never quote a password.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    #[error("cannot create database {name}: {message}")]
    CreateDatabase { name: String, message: String },
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(String),
}

/// A `postgres://` URL split around its database name, so the same server can be
/// addressed with another database and printed without its password.
#[derive(Clone)]
pub(crate) struct DatabaseUrl {
    head: String,
    database: Option<String>,
    tail: String,
    password: Option<String>,
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    pub(crate) fn parse(raw: &str) -> Result<Self, SetupError> {
        let rest = raw
            .strip_prefix("postgres://")
            .or_else(|| raw.strip_prefix("postgresql://"))
            .ok_or_else(|| {
                SetupError::InvalidUrl("must start with postgres:// or postgresql://".to_owned())
            })?;
        let scheme_len = raw.len() - rest.len();
        let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_len];
        let password = authority
            .rsplit_once('@')
            .and_then(|(userinfo, _)| userinfo.split_once(':'))
            .map(|(_, password)| password.to_owned())
            .filter(|password| !password.is_empty());
        let after = &rest[authority_len..];
        let (path, query) = after.split_at(after.find('?').unwrap_or(after.len()));
        let database = path
            .strip_prefix('/')
            .filter(|name| !name.is_empty())
            .map(percent_decode)
            .transpose()?;
        Ok(Self {
            head: raw[..scheme_len + authority_len].to_owned(),
            database,
            tail: query.to_owned(),
            password,
        })
    }

    pub(crate) fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The same server and credentials with another database.
    pub(crate) fn with_database(&self, name: &str) -> String {
        format!("{}/{}{}", self.head, percent_encode(name), self.tail)
    }

    pub(crate) fn redacted(&self) -> String {
        let full = match &self.database {
            Some(name) => self.with_database(name),
            None => format!("{}{}", self.head, self.tail),
        };
        self.scrub(&full)
    }

    /// Masks the password wherever it appears, e.g. in an echoed connection error.
    pub(crate) fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(password) => text.replace(password.as_str(), "***"),
            None => text.to_owned(),
        }
    }

    pub(crate) fn establish(&self, database: &str) -> Result<PgConnection, SetupError> {
        PgConnection::establish(&self.with_database(database)).map_err(|error| {
            SetupError::Connect {
                target: self.scrub(&self.with_database(database)),
                message: self.scrub(&error.to_string()),
            }
        })
    }
}

fn percent_decode(raw: &str) -> Result<String, SetupError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or_else(|| SetupError::InvalidUrl("bad percent-escape".to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| SetupError::InvalidUrl("database name is not UTF-8".to_owned()))
}

fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// An identifier quoted for SQL: database names cannot be bind parameters.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(crate) fn database_exists(conn: &mut PgConnection, name: &str) -> Result<bool, SetupError> {
    // Hand-written: pg_database is a server catalog, not part of `schema.rs`.
    let found = sql_query("SELECT count(*) AS total FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(name)
        .get_result::<Total>(conn)
        .map_err(|e| SetupError::Database(e.to_string()))?;
    Ok(found.get() > 0)
}

/// Creates the URL's database when it does not exist, through the `postgres`
/// maintenance database of the same server. `Ok(true)` iff this call created it.
pub fn ensure_database(database_url: &str) -> Result<bool, SetupError> {
    let url = DatabaseUrl::parse(database_url)?;
    let Some(name) = url.database().map(str::to_owned) else {
        return Ok(false);
    };
    // A role that may use its database but not `postgres` must still get through.
    if PgConnection::establish(database_url).is_ok() {
        return Ok(false);
    }
    let mut admin = url.establish("postgres")?;
    if database_exists(&mut admin, &name)? {
        return Ok(false);
    }
    // Hand-written: DDL, whose name must be quoted into the text.
    match sql_query(format!("CREATE DATABASE {}", quote_ident(&name))).execute(&mut admin) {
        Ok(_) => Ok(true),
        // Another process may have created it between our check and our CREATE.
        Err(_) if database_exists(&mut admin, &name)? => Ok(false),
        Err(error) => Err(SetupError::CreateDatabase {
            name,
            message: url.scrub(&error.to_string()),
        }),
    }
}

pub(crate) fn build_pool(
    database_url: &str,
    max_connections: u32,
    min_idle: Option<u32>,
) -> Result<PgPool, SetupError> {
    build_pool_with(
        database_url,
        max_connections,
        min_idle,
        DEFAULT_STATEMENT_TIMEOUT,
    )
}

fn build_pool_with(
    database_url: &str,
    max_connections: u32,
    min_idle: Option<u32>,
    statement_timeout: Duration,
) -> Result<PgPool, SetupError> {
    let url = DatabaseUrl::parse(database_url)?;
    if max_connections == 0 {
        return Err(SetupError::InvalidSetting(
            "the pool needs at least one connection".to_owned(),
        ));
    }
    Pool::builder()
        .max_size(max_connections)
        .min_idle(min_idle)
        .connection_timeout(CHECKOUT_TIMEOUT)
        // A checkout test costs a round trip on every request; a connection that
        // broke is noticed by diesel and discarded when it is returned instead.
        .test_on_check_out(false)
        .connection_customizer(Box::new(SessionSettings { statement_timeout }))
        .build(ConnectionManager::<PgConnection>::new(database_url))
        .map_err(|error| SetupError::Connect {
            target: url.redacted(),
            message: url.scrub(&error.to_string()),
        })
}

/// A pool of up to `max_connections` connections, opened eagerly so a wrong URL
/// fails here rather than at the first request.
pub fn connect(database_url: &str, max_connections: u32) -> Result<PgPool, SetupError> {
    build_pool(database_url, max_connections, None)
}

/// [`connect`], with every statement cancelled after `statement_timeout`.
pub fn connect_with_timeout(
    database_url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> Result<PgPool, SetupError> {
    build_pool_with(database_url, max_connections, None, statement_timeout)
}

/// Applies the pending embedded migrations and returns their versions. Holds an
/// advisory lock meanwhile, so processes starting together migrate one at a time.
pub fn run_migrations(pool: &PgPool) -> Result<Vec<String>, SetupError> {
    let mut conn = pool.get().map_err(|error| SetupError::Connect {
        target: "the database pool".to_owned(),
        message: error.to_string(),
    })?;
    migrate(&mut conn)
}

pub(crate) fn migrate(conn: &mut PgConnection) -> Result<Vec<String>, SetupError> {
    // Hand-written: a server function call on no table of `schema.rs`.
    let lock = |conn: &mut PgConnection, function: &str| {
        sql_query(format!("SELECT {function}($1)"))
            .bind::<BigInt, _>(MIGRATION_LOCK)
            .execute(conn)
            .map_err(|e| SetupError::Database(e.to_string()))
    };
    // A migration may rewrite a large table: no statement timeout while it runs,
    // and the session's own setting is put back afterwards.
    let previous = session_setting(conn, "statement_timeout", "0")?;
    lock(conn, "pg_advisory_lock")?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(ToString::to_string).collect())
        .map_err(|e| SetupError::Migration(e.to_string()));
    let unlocked = lock(conn, "pg_advisory_unlock");
    let restored = session_setting(conn, "statement_timeout", &previous);
    let applied = applied?;
    unlocked?;
    restored?;
    Ok(applied)
}

/// Sets a session setting, returning its previous value.
fn session_setting(conn: &mut PgConnection, name: &str, value: &str) -> Result<String, SetupError> {
    #[derive(diesel::QueryableByName)]
    struct Previous {
        #[diesel(sql_type = Text)]
        previous: String,
    }
    let failed = |e: diesel::result::Error| SetupError::Database(e.to_string());
    // Hand-written: session settings, on no table of `schema.rs`.
    let previous = sql_query("SELECT current_setting($1) AS previous")
        .bind::<Text, _>(name)
        .get_result::<Previous>(conn)
        .map_err(failed)?
        .previous;
    sql_query("SELECT set_config($1, $2, false)")
        .bind::<Text, _>(name)
        .bind::<Text, _>(value)
        .execute(conn)
        .map_err(failed)?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_swap_their_database_and_hide_their_password() {
        let url = DatabaseUrl::parse("postgres://ann:s3cret@db:5432/tessera?sslmode=disable")
            .expect("valid");
        assert_eq!(url.database(), Some("tessera"));
        assert_eq!(
            url.with_database("postgres"),
            "postgres://ann:s3cret@db:5432/postgres?sslmode=disable"
        );
        assert_eq!(
            url.redacted(),
            "postgres://ann:***@db:5432/tessera?sslmode=disable"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[test]
    fn urls_without_a_database_or_with_escapes_parse() {
        let bare = DatabaseUrl::parse("postgresql://127.0.0.1").expect("valid");
        assert_eq!(bare.database(), None);
        assert_eq!(bare.with_database("x"), "postgresql://127.0.0.1/x");
        let escaped = DatabaseUrl::parse("postgres://h/my%20db").expect("valid");
        assert_eq!(escaped.database(), Some("my db"));
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
