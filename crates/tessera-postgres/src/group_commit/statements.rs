//! The batched statements: one statement, hence one commit, for a whole batch.
//!
//! Redemptions are one set-based statement (`tessera_redeem_batch`, migration
//! `redemption_set_based`): it locks each ticket once, in (tenant, hash) order,
//! judges every member against its ticket and program at its own time, ranks the
//! members that ask for the same ticket and grants the first as many as it has
//! uses left. A member that names a redeemer goes through `tessera_redeem` once
//! per member instead ([`RedeemStatement::PerMember`]): a per-redeemer share is
//! claimed by a conditional upsert that the set-based statement does not repeat.
//! `tessera_redeem` is VOLATILE PL/pgSQL, so each of its statements takes a fresh
//! snapshot and sees what the earlier calls of the same outer statement wrote: the
//! same ticket twice is judged the second time against the first call's write.
//! Either way the same code twice in a batch never yields two successes of one
//! use (`tests::the_same_code_twice_in_one_batch_*`).
//!
//! Standalone uses are one set-based statement too (`tessera_use_standalone_batch`,
//! migration `standalone_use_set_based`), of the same shape. Per member a set-based
//! statement costs an index probe, not a function call with an executor of its own.
//!
//! All are written as query fragments with a static query id rather than
//! `sql_query`, so diesel prepares each once per connection and reuses it.

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel::{PgConnection, QueryResult, RunQueryDsl};

/// One batch of redemptions, column by column (one entry per member).
#[derive(Debug, Default)]
pub(crate) struct RedeemColumns<'a> {
    pub tenant_id: Vec<&'a str>,
    pub code_hash: Vec<&'a [u8]>,
    pub program_id: Vec<&'a str>,
    pub now: Vec<DateTime<Utc>>,
    pub email: Vec<Option<&'a str>>,
    pub redeemed_event_id: Vec<&'a str>,
    pub exhausted_event_id: Vec<&'a str>,
    pub redemption_id: Vec<&'a str>,
    pub redeemer_key: Vec<Option<&'a [u8]>>,
    /// The API key a member was vouched for by from memory (tenant and id), or
    /// none: such a member is refused unless the key exists.
    pub caller_key_tenant: Vec<Option<&'a str>>,
    pub caller_key_id: Vec<Option<&'a str>>,
}

/// What a batch of redemptions returns per success: the member's 1-based position,
/// then `tessera_redeem`'s row (ticket id, payload, object id, groups, remaining).
pub(crate) type RedeemedMember = (i64, (String, Option<String>, String, Vec<String>, i64));

/// Which statement runs a batch of redemptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RedeemStatement {
    /// `tessera_redeem_batch`: the whole batch at once; refuses every member whose
    /// ticket has a per-redeemer limit (`redeemer_key` is not passed).
    SetBased,
    /// `tessera_redeem` once per member: per-redeemer shares, and each member of a
    /// batch the server refused, alone.
    PerMember,
}

/// The statement's columns, bound in `RedeemColumns`' order. A member vouched
/// for by an API key from memory (which may lag a delete) is kept only if that
/// key exists in the statement's snapshot, checked by a scalar subquery on
/// `api_keys`' (tenant_id, id): a probe per member. Written as `EXISTS`, the
/// planner hashes all of `api_keys` instead (`tests/plans.rs`).
fn push_member_columns<'b>(
    c: &'b RedeemColumns<'_>,
    out: &mut AstPass<'_, 'b, Pg>,
    with_redeemer: bool,
) -> QueryResult<()> {
    out.push_bind_param::<Array<Text>, _>(&c.tenant_id)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Bytea>, _>(&c.code_hash)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Text>, _>(&c.program_id)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Timestamptz>, _>(&c.now)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Nullable<Text>>, _>(&c.email)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Text>, _>(&c.redeemed_event_id)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Text>, _>(&c.exhausted_event_id)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Text>, _>(&c.redemption_id)?;
    out.push_sql(", ");
    if with_redeemer {
        out.push_bind_param::<Array<Nullable<Bytea>>, _>(&c.redeemer_key)?;
        out.push_sql(", ");
    }
    out.push_bind_param::<Array<Nullable<Text>>, _>(&c.caller_key_tenant)?;
    out.push_sql(", ");
    out.push_bind_param::<Array<Nullable<Text>>, _>(&c.caller_key_id)
}

/// `tessera_redeem_batch` (migration `redemption_set_based`) over the whole batch.
struct RedeemSetBatch<'q, 'a>(&'q RedeemColumns<'a>);

/// `tessera_redeem` (the latest body is in migration `program_id_as_filter`) once
/// per member, wrapped, not rewritten: a refused member has no row. The
/// MATERIALIZED CTE makes the key check a step of its own, so a member whose key
/// is gone never reaches `tessera_redeem` and spends nothing.
struct RedeemPerMember<'q, 'a>(&'q RedeemColumns<'a>);

/// The static query ids the batches are cached under.
struct RedeemSetBatchId;
struct RedeemPerMemberId;
struct UseBatchId;

impl QueryId for RedeemSetBatch<'_, '_> {
    type QueryId = RedeemSetBatchId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryId for RedeemPerMember<'_, '_> {
    type QueryId = RedeemPerMemberId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

type RedeemedRow = (BigInt, (Text, Nullable<Text>, Text, Array<Text>, BigInt));

impl Query for RedeemSetBatch<'_, '_> {
    type SqlType = RedeemedRow;
}

impl Query for RedeemPerMember<'_, '_> {
    type SqlType = RedeemedRow;
}

impl QueryFragment<Pg> for RedeemSetBatch<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(
            "SELECT b.ord, b.ticket_id, b.payload, b.object_id, b.group_addresses, \
             b.remaining FROM tessera_redeem_batch(",
        );
        push_member_columns(self.0, &mut out, false)?;
        out.push_sql(") AS b");
        Ok(())
    }
}

impl QueryFragment<Pg> for RedeemPerMember<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH m AS MATERIALIZED (SELECT * FROM unnest(");
        push_member_columns(self.0, &mut out, true)?;
        out.push_sql(
            ") WITH ORDINALITY AS u(tenant_id, code_hash, program_id, at, email, \
                 redeemed_event_id, exhausted_event_id, redemption_id, redeemer_key, \
                 key_tenant, key_id, ord) \
             WHERE u.key_id IS NULL OR (SELECT true FROM api_keys k \
                 WHERE k.tenant_id = u.key_tenant AND k.id = u.key_id) IS TRUE) \
             SELECT m.ord, r.ticket_id, r.payload, r.object_id, r.group_addresses, r.remaining \
             FROM m CROSS JOIN LATERAL tessera_redeem(m.tenant_id, m.code_hash, m.program_id, \
                 m.at, m.email, m.redeemed_event_id, m.exhausted_event_id, m.redemption_id, \
                 m.redeemer_key) AS r",
        );
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for RedeemSetBatch<'_, '_> {}
impl RunQueryDsl<PgConnection> for RedeemPerMember<'_, '_> {}

/// Runs the batch as one statement (committed on its own: no transaction is open).
pub(crate) fn redeem_batch(
    conn: &mut PgConnection,
    columns: &RedeemColumns<'_>,
    statement: RedeemStatement,
) -> QueryResult<Vec<RedeemedMember>> {
    match statement {
        RedeemStatement::SetBased => RedeemSetBatch(columns).load(conn),
        RedeemStatement::PerMember => RedeemPerMember(columns).load(conn),
    }
}

/// One batch of standalone uses, column by column.
#[derive(Debug, Default)]
pub(crate) struct UseColumns<'a> {
    pub tenant_id: Vec<&'a str>,
    pub token_hash: Vec<&'a [u8]>,
    pub now: Vec<DateTime<Utc>>,
    /// The id of the member's tenant's API key it was vouched for by from
    /// memory, or none: such a member is refused unless the key exists.
    pub caller_key_id: Vec<Option<&'a str>>,
}

/// Per success: the member's position, uses left (`None`: unlimited), payload.
pub(crate) type UsedMember = (i64, Option<i64>, Option<String>);

/// `tessera_use_standalone_batch` (migration `standalone_use_set_based`) over the
/// whole batch: the members whose key (if any) exists, their tickets locked in
/// (tenant, hash) order, the uses granted as each ticket has them left, the used-up
/// tickets deleted and the tenants' live-ticket counters lowered last.
struct UseBatch<'q, 'a>(&'q UseColumns<'a>);

impl QueryId for UseBatch<'_, '_> {
    type QueryId = UseBatchId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl Query for UseBatch<'_, '_> {
    type SqlType = (BigInt, Nullable<BigInt>, Nullable<Text>);
}

impl QueryFragment<Pg> for UseBatch<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let c = self.0;
        out.push_sql("SELECT b.ord, b.uses_left, b.payload FROM tessera_use_standalone_batch(");
        out.push_bind_param::<Array<Text>, _>(&c.tenant_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Bytea>, _>(&c.token_hash)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&c.now)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&c.caller_key_id)?;
        out.push_sql(") AS b");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for UseBatch<'_, '_> {}

pub(crate) fn use_batch(
    conn: &mut PgConnection,
    columns: &UseColumns<'_>,
) -> QueryResult<Vec<UsedMember>> {
    UseBatch(columns).load(conn)
}
