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
        alert_thresholds -> Nullable<Text>,
        escalation_policy -> Nullable<Text>,
        care_plan -> Nullable<Text>,
        crisis_resources -> Nullable<Text>,
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
        on_call -> Bool,
        working_hours -> Nullable<Text>,
        external_id -> Nullable<Text>,
        erased_at -> Nullable<Timestamp>,
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
        revoked_at -> Nullable<Timestamp>,
        revoked_by -> Nullable<Text>,
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
        actor_id -> Nullable<Text>,
        action -> Text,
        clinic_id -> Nullable<Text>,
        patient_id -> Nullable<Text>,
        subject_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        actor_client_id -> Nullable<Text>,
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
        device_completed_at -> Nullable<Timestamp>,
        timing -> Text,
        mood -> Nullable<Double>,
        safety_alert_id -> Nullable<Text>,
        status -> Text,
        problems -> Nullable<Text>,
        answers_hash -> Nullable<Text>,
        amended_at -> Nullable<Timestamp>,
        earlier_versions -> Nullable<Text>,
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

diesel::table! {
    jobs (id) {
        id -> Text,
        kind -> Text,
        payload -> Text,
        dedupe_key -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        run_at -> Timestamp,
        locked_by -> Nullable<Text>,
        locked_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        priority -> Integer,
    }
}

diesel::table! {
    devices (id) {
        id -> Text,
        account_id -> Text,
        platform -> Text,
        token -> Text,
        app_version -> Nullable<Text>,
        locale -> Nullable<Text>,
        active -> Bool,
        invalid_argument_count -> Integer,
        deactivated_reason -> Nullable<Text>,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        web_p256dh -> Nullable<Text>,
        web_auth -> Nullable<Text>,
    }
}

diesel::table! {
    notifications (id) {
        id -> Text,
        account_id -> Text,
        device_id -> Text,
        kind -> Text,
        ref_id -> Nullable<Text>,
        status -> Text,
        attempts -> Integer,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
        opened_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    notification_attempts (id) {
        id -> Text,
        notification_id -> Text,
        attempt -> Integer,
        at -> Timestamp,
        outcome -> Text,
        provider_status -> Nullable<Integer>,
        provider_reason -> Nullable<Text>,
        latency_ms -> Integer,
    }
}

diesel::table! {
    alerts (id) {
        id -> Text,
        clinic_id -> Text,
        patient_id -> Text,
        rule -> Text,
        severity -> Text,
        status -> Text,
        explanation -> Text,
        inputs -> Text,
        check_in_id -> Nullable<Text>,
        signal_count -> Integer,
        tier -> Integer,
        escalations -> Integer,
        opened_at -> Timestamp,
        last_signal_at -> Timestamp,
        ack_deadline -> Timestamp,
        acknowledged_at -> Nullable<Timestamp>,
        acknowledged_by -> Nullable<Text>,
        assigned_to -> Nullable<Text>,
        resolved_at -> Nullable<Timestamp>,
        resolved_by -> Nullable<Text>,
        resolution_note -> Nullable<Text>,
        round -> Integer,
        new_signal_since_ack -> Bool,
        unreachable_at -> Nullable<Timestamp>,
        severity_rank -> Integer,
        signal_completed_at -> Nullable<Timestamp>,
        signal_received_at -> Nullable<Timestamp>,
        patient_erased_at -> Nullable<Timestamp>,
        reached_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    alert_deliveries (id) {
        id -> Text,
        alert_id -> Text,
        round -> Integer,
        escalation -> Integer,
        tier -> Integer,
        audience -> Text,
        channel -> Text,
        recipient -> Text,
        ref_id -> Text,
        status -> Text,
        detail -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    alert_events (id) {
        id -> Text,
        alert_id -> Text,
        at -> Timestamp,
        kind -> Text,
        actor_id -> Nullable<Text>,
        detail -> Text,
        check_in_id -> Nullable<Text>,
    }
}

diesel::table! {
    webhook_endpoints (id) {
        id -> Text,
        clinic_id -> Text,
        url -> Text,
        secret -> Text,
        previous_secret -> Nullable<Text>,
        previous_expires_at -> Nullable<Timestamp>,
        active -> Bool,
        created_at -> Timestamp,
        last_success_at -> Nullable<Timestamp>,
        failing_since -> Nullable<Timestamp>,
        last_failure -> Nullable<Text>,
    }
}

diesel::table! {
    patient_schedules (patient_id) {
        patient_id -> Text,
        clinic_id -> Text,
        window_start -> Text,
        window_end -> Text,
        quiet_start -> Text,
        quiet_end -> Text,
        care_plan -> Nullable<Text>,
        planned_until -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    prompts (id) {
        id -> Text,
        patient_id -> Text,
        clinic_id -> Text,
        slot -> Text,
        rule -> Text,
        instrument -> Text,
        session_id -> Nullable<Text>,
        status -> Text,
        local_time -> Text,
        due_at -> Timestamp,
        remind_at -> Nullable<Timestamp>,
        expires_at -> Timestamp,
        sent_at -> Nullable<Timestamp>,
        reminded_at -> Nullable<Timestamp>,
        closed_at -> Nullable<Timestamp>,
        check_in_id -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    system_clients (id) {
        id -> Text,
        clinic_id -> Text,
        name -> Text,
        jwks -> Text,
        scope -> Text,
        created_by -> Text,
        created_at -> Timestamp,
        disabled_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        keys_rotated_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    client_assertions (client_id, jti) {
        client_id -> Text,
        jti -> Text,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    system_tokens (token_hash) {
        token_hash -> Text,
        client_id -> Text,
        clinic_id -> Text,
        scope -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    bulk_exports (id) {
        id -> Text,
        clinic_id -> Text,
        requested_by -> Text,
        request -> Text,
        base_url -> Text,
        types -> Text,
        since -> Nullable<Timestamp>,
        status -> Text,
        done_types -> Integer,
        output -> Nullable<Text>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    consent_documents (id) {
        id -> Text,
        clinic_id -> Text,
        version -> Integer,
        title -> Text,
        body -> Text,
        published_by -> Text,
        published_at -> Timestamp,
    }
}

diesel::table! {
    consent_records (id) {
        id -> Text,
        patient_id -> Text,
        clinic_id -> Text,
        document_id -> Text,
        version -> Integer,
        action -> Text,
        at -> Timestamp,
    }
}

diesel::table! {
    clinic_lifecycle (clinic_id) {
        clinic_id -> Text,
        consent_version -> Nullable<Integer>,
        erasure_mode -> Text,
        check_in_retention_days -> Nullable<Integer>,
        alert_retention_days -> Nullable<Integer>,
        audit_retention_days -> Nullable<Integer>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    password_resets (id) {
        id -> Text,
        account_id -> Text,
        code_hash -> Text,
        issued_by -> Text,
        issued_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    help_requests (id) {
        id -> Text,
        patient_id -> Text,
        clinic_id -> Text,
        note -> Nullable<Text>,
        received_at -> Timestamp,
        alert_id -> Nullable<Text>,
    }
}

diesel::joinable!(accounts -> clinics (clinic_id));
diesel::joinable!(patient_schedules -> accounts (patient_id));
diesel::joinable!(alert_events -> alerts (alert_id));
diesel::joinable!(alert_deliveries -> alerts (alert_id));
diesel::joinable!(notifications -> devices (device_id));
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
    jobs,
    devices,
    notifications,
    notification_attempts,
    alerts,
    alert_deliveries,
    alert_events,
    webhook_endpoints,
    patient_schedules,
    prompts,
    system_clients,
    client_assertions,
    system_tokens,
    bulk_exports,
    consent_documents,
    consent_records,
    clinic_lifecycle,
    password_resets,
    help_requests,
);
