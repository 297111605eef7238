//! The tables, as both migrations create them. Written by hand: see `diesel.toml`.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        username -> Nullable<Text>,
        password_hash -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
        email_verified_at -> Nullable<Timestamp>,
        totp_enabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
        last_used_at -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip -> Nullable<Text>,
        refresh_family_hash -> Nullable<Binary>,
        amr -> Text,
    }
}

diesel::table! {
    refresh_tokens (session_id, generation) {
        session_id -> Text,
        generation -> Integer,
        token_hash -> Binary,
        created_at -> Timestamp,
        retired_at -> Nullable<Timestamp>,
        successor -> Nullable<Binary>,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        generation -> Integer,
        algorithm -> Text,
        private_key -> Binary,
        public_key -> Binary,
        created_at -> Timestamp,
        /// When the key stops verifying: NULL while it signs, set by a rotation.
        retired_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(refresh_tokens -> sessions (session_id));

diesel::table! {
    login_failures (id) {
        id -> Text,
        throttle_key -> Text,
        failed_at -> Timestamp,
    }
}

diesel::table! {
    security_events (id) {
        id -> Text,
        user_id -> Text,
        #[sql_name = "type"]
        kind -> Text,
        at -> Timestamp,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        session_id -> Nullable<Text>,
    }
}

diesel::joinable!(security_events -> users (user_id));

diesel::table! {
    one_time_codes (id) {
        id -> Text,
        user_id -> Text,
        purpose -> Text,
        email -> Text,
        code_hash -> Binary,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        attempts -> Integer,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(one_time_codes -> users (user_id));

diesel::table! {
    outbox (id) {
        id -> Text,
        kind -> Text,
        recipient -> Text,
        user_id -> Nullable<Text>,
        code -> Nullable<Text>,
        detail -> Nullable<Text>,
        requested_ip -> Nullable<Text>,
        requested_user_agent -> Nullable<Text>,
        created_at -> Timestamp,
        next_attempt_at -> Timestamp,
        attempts -> Integer,
        done_at -> Nullable<Timestamp>,
        outcome -> Nullable<Text>,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Binary,
        created_at -> Timestamp,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret -> Binary,
        created_at -> Timestamp,
        confirmed_at -> Nullable<Timestamp>,
        last_used_step -> Nullable<BigInt>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Binary,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    mfa_challenges (token_hash) {
        token_hash -> Binary,
        user_id -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        wrong_codes -> Integer,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Binary,
        credential -> Text,
        name -> Text,
        created_at -> Timestamp,
        last_used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webauthn_ceremonies (id_hash) {
        id_hash -> Binary,
        purpose -> Text,
        owner -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(totp_factors -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(mfa_challenges -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    refresh_tokens,
    signing_keys,
    login_failures,
    security_events,
    one_time_codes,
    outbox,
    server_secrets,
    totp_factors,
    recovery_codes,
    mfa_challenges,
    passkeys,
    webauthn_ceremonies,
);
