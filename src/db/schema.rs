// @generated automatically by Diesel CLI.

diesel::table! {
    account_tokens (token_hash) {
        token_hash -> Text,
        purpose -> Text,
        user_id -> Text,
        created_at -> Int8,
        expires_at -> Int8,
    }
}

diesel::table! {
    app_settings (name) {
        name -> Text,
        value -> Text,
    }
}

diesel::table! {
    auth_events (id) {
        id -> Text,
        at -> Int8,
        kind -> Text,
        username -> Nullable<Text>,
        actor -> Nullable<Text>,
        client_ip -> Nullable<Text>,
        session_id -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    known_devices (user_id, device, network) {
        user_id -> Text,
        device -> Text,
        network -> Text,
        first_seen -> Int8,
        last_seen -> Int8,
    }
}

diesel::table! {
    login_throttle (key) {
        key -> Text,
        failures -> Int4,
        last_failure_at -> Int8,
        locked_until -> Int8,
        lock_count -> Int4,
    }
}

diesel::table! {
    mail_outbox (id) {
        id -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        recipient -> Text,
        payload -> Text,
        status -> Text,
        created_at -> Int8,
        expires_at -> Int8,
        next_attempt_at -> Int8,
        locked_until -> Int8,
        attempts -> Int4,
        last_error -> Nullable<Text>,
        sent_at -> Nullable<Int8>,
    }
}

diesel::table! {
    passkeys (id) {
        id -> Text,
        user_id -> Text,
        credential_id -> Text,
        name -> Text,
        credential -> Text,
        created_at -> Int8,
        last_used_at -> Nullable<Int8>,
    }
}

diesel::table! {
    pending_sign_ins (id_hash) {
        id_hash -> Text,
        user_id -> Text,
        password_hash -> Text,
        next -> Nullable<Text>,
        created_at -> Int8,
        expires_at -> Int8,
        binding -> Text,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> Text,
        user_id -> Text,
        code_hash -> Text,
        created_at -> Int8,
        used_at -> Nullable<Int8>,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        token_hash -> Text,
        user_id -> Text,
        data -> Text,
        created_at -> Int8,
        last_seen_at -> Int8,
        idle_expires_at -> Int8,
        absolute_expires_at -> Nullable<Int8>,
        ip -> Text,
        user_agent -> Text,
        cloud_token -> Nullable<Text>,
        cloud_role -> Nullable<Text>,
        cloud_expires_at -> Nullable<Int8>,
        auth_method -> Text,
        authenticated_at -> Int8,
        new_device_notices -> Nullable<Text>,
        authenticated_with -> Text,
        csrf_token -> Text,
        dbsc_key -> Nullable<Text>,
        dbsc_challenge -> Nullable<Text>,
        dbsc_cookie_hash -> Nullable<Text>,
        dbsc_cookie_expires_at -> Nullable<Int8>,
    }
}

diesel::table! {
    trusted_browsers (id) {
        id -> Text,
        user_id -> Text,
        token_hash -> Text,
        created_at -> Int8,
        expires_at -> Int8,
        last_used_at -> Nullable<Int8>,
        user_agent -> Text,
        ip -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        password_hash -> Text,
        role -> Text,
        disabled -> Int4,
        created_at -> Int8,
        last_login_at -> Nullable<Int8>,
        totp_secret -> Nullable<Text>,
        totp_last_step -> Nullable<Int8>,
        factor_epoch -> Int4,
        email -> Nullable<Text>,
    }
}

diesel::table! {
    webauthn_ceremonies (id) {
        id -> Text,
        purpose -> Text,
        binding -> Text,
        user_id -> Nullable<Text>,
        client_ip -> Text,
        state -> Text,
        expires_at -> Int8,
    }
}

diesel::joinable!(account_tokens -> users (user_id));
diesel::joinable!(known_devices -> users (user_id));
diesel::joinable!(passkeys -> users (user_id));
diesel::joinable!(pending_sign_ins -> users (user_id));
diesel::joinable!(recovery_codes -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(trusted_browsers -> users (user_id));
diesel::joinable!(webauthn_ceremonies -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    account_tokens,
    app_settings,
    auth_events,
    known_devices,
    login_throttle,
    mail_outbox,
    passkeys,
    pending_sign_ins,
    recovery_codes,
    sessions,
    trusted_browsers,
    users,
    webauthn_ceremonies,
);
