//! Test databases: each test gets a fresh database cloned from a template that
//! was migrated once, so tests run in parallel without sharing state.
//!
//! The server comes from `TESSERA_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`); its role must
//! be allowed to create databases.
//!
//! The default turns TLS off: on loopback it buys nothing, and it keeps OpenSSL
//! out of the test processes' connections. With TLS, a pool's worker thread still
//! connecting while a test binary exits races OpenSSL's exit handler, a known way
//! for the binary to die with SIGSEGV after every test passed
//! (diesel-rs/diesel#3441), as tests/lifecycle.rs did once here.

use std::sync::OnceLock;
use std::time::Duration;

use diesel::sql_types::BigInt;
use diesel::{sql_query, PgConnection, RunQueryDsl};
use rand::Rng;

use crate::setup::{build_pool, database_exists, migrate, quote_ident, DatabaseUrl};
use crate::{PgPool, SetupError};

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
/// Serialises template builds across test processes ("tessera" + 2).
const TEMPLATE_LOCK: i64 = 0x7465_7373_6572_6102;
const MAINTENANCE_DB: &str = "postgres";
/// Connections of the pool that [`TestDatabase::pool`] shares.
const SHARED_POOL_SIZE: u32 = 8;

fn server() -> Result<DatabaseUrl, SetupError> {
    let raw =
        std::env::var("TESSERA_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
    DatabaseUrl::parse(&raw)
}

fn database_error(error: diesel::result::Error) -> SetupError {
    SetupError::Database(error.to_string())
}

/// The template's name carries a digest of the migrations' text, so a changed
/// migration gets a new template instead of a stale one.
fn template_name() -> String {
    format!(
        "tessera_template_{}",
        &env!("TESSERA_MIGRATIONS_DIGEST")[..12]
    )
}

/// Runs `statement` again while another session is still leaving a database it
/// needs to itself (a just-closed connection takes a moment to go).
fn execute_retrying(conn: &mut PgConnection, statement: &str) -> Result<(), SetupError> {
    let mut attempts = 0;
    loop {
        // Hand-written: DDL, whose names must be quoted into the text.
        match sql_query(statement).execute(conn) {
            Ok(_) => return Ok(()),
            Err(error) if attempts < 50 && error.to_string().contains("being accessed") => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => return Err(database_error(error)),
        }
    }
}

/// Builds the template once per schema under an advisory lock. It is built under
/// a temporary name and renamed when complete, so a run that crashed half-way
/// never leaves a template that looks usable.
fn build_template(server: &DatabaseUrl) -> Result<String, SetupError> {
    let name = template_name();
    let mut admin = server.establish(MAINTENANCE_DB)?;
    // Hand-written: a server function call on no table of `schema.rs`.
    let lock = |conn: &mut PgConnection, function: &str| {
        sql_query(format!("SELECT {function}($1)"))
            .bind::<BigInt, _>(TEMPLATE_LOCK)
            .execute(conn)
            .map_err(database_error)
    };
    lock(&mut admin, "pg_advisory_lock")?;
    let built = (|| {
        if database_exists(&mut admin, &name)? {
            return Ok(());
        }
        let building = format!("{name}_building");
        execute_retrying(
            &mut admin,
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&building)
            ),
        )?;
        execute_retrying(
            &mut admin,
            &format!("CREATE DATABASE {}", quote_ident(&building)),
        )?;
        {
            let mut conn = server.establish(&building)?;
            migrate(&mut conn)?;
        }
        // Nobody may connect to a template: CREATE DATABASE ... TEMPLATE refuses
        // to copy a database that has sessions.
        execute_retrying(
            &mut admin,
            &format!(
                "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
                quote_ident(&building)
            ),
        )?;
        execute_retrying(
            &mut admin,
            &format!(
                "ALTER DATABASE {} RENAME TO {}",
                quote_ident(&building),
                quote_ident(&name)
            ),
        )
    })();
    let unlocked = lock(&mut admin, "pg_advisory_unlock");
    built?;
    unlocked?;
    Ok(name)
}

fn template(server: &DatabaseUrl) -> Result<&'static str, SetupError> {
    static TEMPLATE: OnceLock<Result<String, String>> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| build_template(server).map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|message| SetupError::Database(format!("test template unavailable: {message}")))
}

/// A fresh database cloned from the migrated template, dropped (`WITH (FORCE)`)
/// when this value is dropped.
pub struct TestDatabase {
    server: DatabaseUrl,
    name: String,
    url: String,
    pool: OnceLock<PgPool>,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl TestDatabase {
    /// # Panics
    /// When the test server cannot be reached or the database cannot be created:
    /// a test cannot run without it.
    pub fn new() -> Self {
        match Self::try_new() {
            Ok(database) => database,
            Err(error) => panic!("cannot create a test database: {error}"),
        }
    }

    pub fn try_new() -> Result<Self, SetupError> {
        let server = server()?;
        let template = template(&server)?;
        let name = format!("tessera_test_{:016x}", rand::thread_rng().gen::<u64>());
        let mut admin = server.establish(MAINTENANCE_DB)?;
        execute_retrying(
            &mut admin,
            &format!(
                "CREATE DATABASE {} TEMPLATE {}",
                quote_ident(&name),
                quote_ident(template)
            ),
        )?;
        Ok(Self {
            url: server.with_database(&name),
            server,
            name,
            pool: OnceLock::new(),
        })
    }

    /// A fresh database with nothing in it (cloned from `template0`, not migrated):
    /// a target to restore a dump into. Dropped like any other.
    ///
    /// # Panics
    /// When the test server cannot be reached or the database cannot be created.
    pub fn empty() -> Self {
        let created = server().and_then(|server| {
            let name = format!("tessera_test_{:016x}", rand::thread_rng().gen::<u64>());
            let mut admin = server.establish(MAINTENANCE_DB)?;
            execute_retrying(
                &mut admin,
                &format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&name)),
            )?;
            Ok(Self {
                url: server.with_database(&name),
                server,
                name,
                pool: OnceLock::new(),
            })
        });
        match created {
            Ok(database) => database,
            Err(error) => panic!("cannot create an empty test database: {error}"),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A small pool shared by every caller of this method.
    ///
    /// # Panics
    /// When the database cannot be connected to.
    pub fn pool(&self) -> PgPool {
        self.pool
            .get_or_init(|| self.pool_with_size(SHARED_POOL_SIZE))
            .clone()
    }

    /// A separate pool of up to `max_connections`, for tests that need many
    /// connections at once (concurrency tests).
    ///
    /// # Panics
    /// When the database cannot be connected to.
    pub fn pool_with_size(&self, max_connections: u32) -> PgPool {
        match build_pool(&self.url, max_connections, Some(1)) {
            Ok(pool) => pool,
            Err(error) => panic!("cannot connect to test database {}: {error}", self.name),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        drop(self.pool.take());
        let dropped = self.server.establish(MAINTENANCE_DB).and_then(|mut admin| {
            // Hand-written: DDL, whose name must be quoted into the text.
            sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            ))
            .execute(&mut admin)
            .map_err(database_error)
        });
        if let Err(error) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}
