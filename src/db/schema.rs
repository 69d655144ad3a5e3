//! The one schema both backends share. Only types every backend maps the
//! same way are used: BigInt, Integer, Text, Bool, Timestamp (UTC, naive),
//! Date.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Nullable<Text>,
        is_admin -> Bool,
        state -> Text,
        otp_secret -> Nullable<Text>,
        two_factor_enabled -> Bool,
        created_at -> Timestamp,
        otp_last_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    personal_access_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        description -> Nullable<Text>,
        scopes -> Text,
        token_digest -> Text,
        created_at -> Timestamp,
        expires_at -> Nullable<Date>,
        revoked -> Bool,
        last_used_at -> Nullable<Timestamp>,
        last_used_ips -> Text,
        ips_updated_at -> Nullable<Timestamp>,
        impersonation -> Bool,
        previous_token_id -> Nullable<BigInt>,
        expire_notification_delivered -> Bool,
        after_expiry_notification_delivered -> Bool,
        repositories -> Nullable<Text>,
        push_ref_patterns -> Nullable<Text>,
    }
}

diesel::table! {
    projects (id) {
        id -> BigInt,
        path -> Text,
        name -> Text,
        description -> Nullable<Text>,
        owner_id -> BigInt,
        visibility -> Text,
        default_branch -> Text,
        created_at -> Timestamp,
        last_activity_at -> Timestamp,
    }
}

diesel::table! {
    project_members (project_id, user_id) {
        project_id -> BigInt,
        user_id -> BigInt,
        access_level -> Integer,
        created_at -> Timestamp,
        expires_at -> Nullable<Date>,
    }
}

diesel::table! {
    application_settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    instance_facts (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::joinable!(personal_access_tokens -> users (user_id));
diesel::joinable!(projects -> users (owner_id));
diesel::joinable!(project_members -> projects (project_id));
diesel::joinable!(project_members -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    personal_access_tokens,
    projects,
    project_members,
    application_settings,
);

diesel::define_sql_function! {
    /// SQL `lower()`, for the case-insensitive unique keys.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

diesel::table! {
    auth_failures (key) {
        key -> Text,
        failures -> Integer,
        window_start -> Timestamp,
        locked_until -> Nullable<Timestamp>,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> BigInt,
        digest -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        two_factor_pending -> Bool,
        flash -> Nullable<Text>,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(sessions, users);

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        digest -> Text,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    notifications (id) {
        id -> BigInt,
        token_id -> BigInt,
        kind -> Text,
        detail -> Nullable<Text>,
        created_at -> Timestamp,
        claimed_at -> Nullable<Timestamp>,
        sent_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
    }
}

diesel::table! {
    job_runs (name) {
        name -> Text,
        last_day -> Date,
    }
}

diesel::joinable!(notifications -> personal_access_tokens (token_id));
diesel::allow_tables_to_appear_in_same_query!(notifications, personal_access_tokens);
diesel::allow_tables_to_appear_in_same_query!(notifications, users);

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        author_id -> Nullable<BigInt>,
        author_name -> Text,
        entity_type -> Text,
        entity_id -> BigInt,
        entity_path -> Nullable<Text>,
        event_name -> Text,
        target_type -> Nullable<Text>,
        target_id -> Nullable<BigInt>,
        target_details -> Nullable<Text>,
        ip_address -> Nullable<Text>,
        details -> Text,
        created_at -> Timestamp,
    }
}
