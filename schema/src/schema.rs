//! Portable table definitions: TEXT ids, UTC `Timestamp`s and TEXT JSON, so one schema serves
//! PostgreSQL and SQLite alike.
#![expect(
    missing_docs,
    reason = "generated table definitions; the migrations document them"
)]

diesel::table! {
    clinics (id) {
        id -> Text,
        name -> Text,
        timezone -> Text,
        created_at -> Timestamp,
        country -> Nullable<Text>,
        crisis_phone -> Nullable<Text>,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        clinic_id -> Nullable<Text>,
        display_name -> Nullable<Text>,
        timezone -> Text,
        disabled_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    invitations (id) {
        id -> Text,
        clinic_id -> Text,
        role -> Text,
        code_hash -> Text,
        email -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        accepted_at -> Nullable<Timestamp>,
        accepted_account_id -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_families (id) {
        id -> Text,
        account_id -> Text,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
        revoked_reason -> Nullable<Text>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        family_id -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        spent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        at -> Timestamp,
        actor_id -> Text,
        action -> Text,
        clinic_id -> Nullable<Text>,
        patient_id -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    check_ins (id) {
        id -> Text,
        patient_id -> Text,
        clinic_id -> Text,
        instrument -> Text,
        instrument_version -> Integer,
        answers -> Text,
        total -> Nullable<Integer>,
        severity -> Nullable<Text>,
        item9 -> Nullable<Integer>,
        completed_at -> Timestamp,
        received_at -> Timestamp,
        prompt_id -> Nullable<Text>,
        content_hash -> Text,
    }
}

diesel::table! {
    treatment_sessions (id) {
        id -> Text,
        patient_id -> Text,
        clinic_id -> Text,
        modality -> Text,
        status -> Text,
        scheduled_at -> Timestamp,
        observations -> Nullable<Text>,
        created_by -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(accounts -> clinics (clinic_id));
diesel::joinable!(invitations -> clinics (clinic_id));
diesel::joinable!(refresh_families -> accounts (account_id));
diesel::joinable!(refresh_tokens -> refresh_families (family_id));

diesel::allow_tables_to_appear_in_same_query!(
    clinics,
    accounts,
    invitations,
    refresh_families,
    refresh_tokens,
    audit_events,
    check_ins,
    treatment_sessions,
);
