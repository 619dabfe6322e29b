//! The diesel view of the tables in `migrations/`. Plain reads and writes go
//! through diesel's typed query builder, so the compiler checks them against these
//! definitions; the statements whose SQL is the point (conditional counters and
//! redemption, the batch insert, the standalone use) are hand-written and read
//! their rows by name, taking the column types from here too.

diesel::table! {
    tenants (id) {
        id -> Text,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    api_keys (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        name -> Text,
        role -> Text,
        key_hash -> Bytea,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    programs (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        name -> Nullable<Text>,
        object_id -> Text,
        group_addresses -> Array<Text>,
        ntp_class -> Int2,
        max_tickets -> Int8,
        max_redemptions -> Int8,
        start_time -> Timestamptz,
        end_time -> Timestamptz,
        ticket_length -> Int2,
        alphabet -> Text,
        url_prefix -> Nullable<Text>,
        one_active_per_subject -> Bool,
        allow_rollback -> Bool,
        state -> Text,
        issued_tickets -> Int8,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        code_pattern -> Nullable<Text>,
        check_digit -> Bool,
    }
}

diesel::table! {
    tickets (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        program_id -> Text,
        code_hash -> Bytea,
        link_hash -> Nullable<Bytea>,
        email -> Nullable<Text>,
        email_normalized -> Nullable<Text>,
        subject -> Nullable<Text>,
        exclusive_subject -> Nullable<Text>,
        max_redemptions -> Nullable<Int8>,
        redemptions -> Int8,
        state -> Text,
        failed_attempts -> Int8,
        payload -> Nullable<Text>,
        last_redeemed_at -> Nullable<Timestamptz>,
        last_failed_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        version -> Int8,
        locked_until -> Nullable<Timestamptz>,
        email_locks -> Int4,
        per_redeemer_limit -> Nullable<Int8>,
    }
}

diesel::table! {
    redeemer_uses (tenant_id, ticket_id, redeemer_key) {
        tenant_id -> Text,
        ticket_id -> Text,
        redeemer_key -> Bytea,
        uses -> Int8,
    }
}

diesel::table! {
    standalone_tickets (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        token_hash -> Bytea,
        name -> Nullable<Text>,
        permissions -> Nullable<Text>,
        payload -> Nullable<Text>,
        total_uses -> Int8,
        uses_left -> Nullable<Int8>,
        expires_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    tenant_counters (tenant_id) {
        tenant_id -> Text,
        live_standalone -> Int8,
    }
}

diesel::table! {
    events (tenant_id, seq) {
        tenant_id -> Text,
        seq -> Int8,
        id -> Text,
        #[sql_name = "type"]
        event_type -> Text,
        created_at -> Timestamptz,
        program_id -> Nullable<Text>,
        ticket_id -> Nullable<Text>,
        data -> Jsonb,
    }
}

diesel::table! {
    key_envelope (id) {
        id -> Int2,
        envelope -> Bytea,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    throttle_windows (subject, minute) {
        subject -> Text,
        minute -> Int8,
        failures -> Int4,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    tenants,
    api_keys,
    programs,
    tickets,
    standalone_tickets,
    tenant_counters,
    events,
);

// The directories route the lookups that start without a tenant (migration
// 2026-12-01-000200_tenant_routed_lookups); on Citus they are reference tables.
diesel::table! {
    program_directory (program_id) {
        program_id -> Text,
        tenant_id -> Text,
    }
}

diesel::table! {
    legacy_api_key_directory (key_hash) {
        key_hash -> Bytea,
        tenant_id -> Text,
    }
}

diesel::table! {
    legacy_link_directory (link_hash) {
        link_hash -> Bytea,
        tenant_id -> Text,
    }
}
