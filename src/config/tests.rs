//! The configuration's rules, one variable at a time.

use super::*;
use std::collections::HashMap;

fn parse(vars: &[(&str, &str)]) -> Result<Settings, String> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Settings::from_lookup(|k| map.get(k).cloned()).map_err(|e| e.to_string())
}

#[test]
fn defaults_match_the_contract() {
    let s = parse(&[]).unwrap();
    assert_eq!(s.database.backend, Backend::Sqlite);
    assert_eq!(s.database.url, "dashboard.db");
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.sessions.idle_timeout, Duration::from_secs(7200));
    assert_eq!(s.sessions.absolute_timeout, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(s.sessions.prune_interval, Some(Duration::from_secs(600)));
    assert_eq!(s.sign_in.max_failures, 5);
    assert_eq!(s.sign_in.password_min_length, 15);
    assert!(s.cloud.is_none());
    assert_eq!(s.metrics_listen, None, "metrics are off unless asked for");
    let on = parse(&[("DASHBOARD_METRICS_LISTEN", "127.0.0.1:9181")]).unwrap();
    assert_eq!(on.metrics_listen.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:9181"));
    assert_eq!(s.sessions.max_per_user, 100);
    assert_eq!(s.sign_in.mfa, MfaPolicy::Optional);
    assert_eq!(s.sign_in.reauth_max_age, Duration::from_secs(15 * 60));
}

#[test]
fn the_mfa_policy_reads_its_four_values() {
    for (raw, policy) in [
        ("optional", MfaPolicy::Optional),
        ("required-for-admins", MfaPolicy::RequiredForAdmins),
        ("Required", MfaPolicy::Required),
        ("off", MfaPolicy::Off),
    ] {
        assert_eq!(parse(&[("DASHBOARD_MFA", raw)]).unwrap().sign_in.mfa, policy, "{raw}");
    }
    let s = parse(&[("DASHBOARD_REAUTH_MAX_AGE", "5m")]).unwrap();
    assert_eq!(s.sign_in.reauth_max_age, Duration::from_secs(300));
}

#[test]
fn database_urls_choose_the_backend() {
    assert_eq!(DatabaseUrl::parse("postgres://u@h/db").unwrap().backend, Backend::Postgres);
    assert_eq!(DatabaseUrl::parse("postgresql://u@h/db").unwrap().backend, Backend::Postgres);
    let s = DatabaseUrl::parse("sqlite://data/x.db").unwrap();
    assert_eq!((s.backend, s.url.as_str()), (Backend::Sqlite, "data/x.db"));
    assert!(DatabaseUrl::parse("mysql://h/db").unwrap_err().contains("mysql"));
}

#[test]
fn bad_values_name_the_variable() {
    for (name, value) in [
        ("DASHBOARD_SESSION_IDLE_TIMEOUT", "soon"),
        ("DASHBOARD_SESSION_IDLE_TIMEOUT", "off"),
        ("DASHBOARD_PRUNE_INTERVAL", "0s"),
        ("DASHBOARD_LISTEN", "nowhere"),
        ("DASHBOARD_METRICS_LISTEN", "9181"),
        ("DASHBOARD_PUBLIC_URL", "ftp://x"),
        ("DASHBOARD_LOGIN_MAX_FAILURES", "-1"),
        ("DASHBOARD_MAX_SESSIONS_PER_USER", "0"),
        ("DASHBOARD_MAX_SESSIONS_PER_USER", "lots"),
        ("DASHBOARD_SECRET_KEY", "c2hvcnQ="),
        ("DASHBOARD_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("DASHBOARD_LOG_FORMAT", "xml"),
        ("DASHBOARD_CLOUD_REQUIRED", "maybe"),
        ("DASHBOARD_MFA", "sometimes"),
        ("DASHBOARD_REAUTH_MAX_AGE", "soon"),
        ("DASHBOARD_REAUTH_MAX_AGE", "off"),
        ("DATABASE_URL", "mysql://h/db"),
        ("DASHBOARD_WEBAUTHN_RP_ID", "example.com"),
        ("DASHBOARD_SMTP_URL", "http://mail.example.com"),
        ("DASHBOARD_SMTP_URL", "smtp://mail.example.com"),
        ("DASHBOARD_MAIL_FROM", "not an address"),
    ] {
        let err = parse(&[(name, value)]).err().unwrap_or_else(|| panic!("{name}={value} accepted"));
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn a_bad_duration_says_what_is_expected_without_parser_jargon() {
    for value in ["soon", "two hours", "15 parsecs", "5", "m5"] {
        let err = parse(&[("DASHBOARD_LOGIN_LOCKOUT", value)]).err().unwrap();
        assert!(err.contains("DASHBOARD_LOGIN_LOCKOUT") && err.contains("like 90s, 15m, 2h"), "{err}");
        assert!(!err.contains(" at ") && !err.contains("expected"), "{err}");
    }
    assert!(parse(&[("DASHBOARD_LOGIN_LOCKOUT", "15 parsecs")]).err().unwrap().contains("`parsecs` is not a unit"));
}

#[test]
fn an_absolute_timeout_shorter_than_the_idle_timeout_is_refused_naming_both() {
    let err =
        parse(&[("DASHBOARD_SESSION_IDLE_TIMEOUT", "2h"), ("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "1h")]).err().unwrap();
    assert!(err.contains("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT") && err.contains("DASHBOARD_SESSION_IDLE_TIMEOUT"));
    assert!(err.contains("1h") && err.contains("2h"), "{err}");
    let err = parse(&[("DASHBOARD_SESSION_IDLE_TIMEOUT", "13h")]).err().unwrap();
    assert!(err.contains("12h"), "the default absolute timeout counts too: {err}");
    for ok in [
        &[("DASHBOARD_SESSION_IDLE_TIMEOUT", "2h"), ("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "2h")][..],
        &[("DASHBOARD_SESSION_IDLE_TIMEOUT", "13h"), ("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "off")],
    ] {
        assert!(parse(ok).is_ok(), "{ok:?}");
    }
}

#[test]
fn a_relying_party_id_must_be_a_domain_of_the_public_url() {
    let with = |url: &str, id: &str| parse(&[("DASHBOARD_PUBLIC_URL", url), ("DASHBOARD_WEBAUTHN_RP_ID", id)]);
    assert_eq!(
        with("https://dash.example.com", "example.com").unwrap().sign_in.webauthn_rp_id.as_deref(),
        Some("example.com")
    );
    assert_eq!(
        with("https://Dash.Example.com", "DASH.example.com").unwrap().sign_in.webauthn_rp_id.unwrap(),
        "dash.example.com"
    );
    assert_eq!(with("http://localhost:8080", "localhost").unwrap().sign_in.webauthn_rp_id.unwrap(), "localhost");
    assert_eq!(parse(&[]).unwrap().sign_in.webauthn_rp_id, None, "unset: the public URL's host, decided at start");
    for (url, id, why) in [
        ("https://dash.example.com", "other.com", "not `other.com` nor a subdomain"),
        ("https://dash.example.com", "ample.com", "not `ample.com`"),
        ("https://dash.example.com", "https://example.com", "not a domain name"),
        ("https://dash.example.com", "example.com:443", "not a domain name"),
        ("https://dash.example.com", "127.0.0.1", "IP address"),
        ("https://dash.example.com", "[::1]", "IP address"),
        ("http://127.0.0.1:8080", "localhost", "host is an IP address"),
        ("https://dash.example.com", "-bad.example.com", "not a domain name"),
    ] {
        let err = with(url, id).err().unwrap_or_else(|| panic!("{id} for {url} accepted"));
        assert!(err.contains("DASHBOARD_WEBAUTHN_RP_ID") && err.contains(why), "{err}");
    }
}

#[test]
fn off_disables_the_absolute_timeout_and_the_pruner() {
    let s = parse(&[("DASHBOARD_SESSION_ABSOLUTE_TIMEOUT", "off"), ("DASHBOARD_PRUNE_INTERVAL", "off")]).unwrap();
    assert_eq!(s.sessions.absolute_timeout, None);
    assert_eq!(s.sessions.prune_interval, None);
}

#[test]
fn cloud_access_is_configured_whole_or_not_at_all() {
    let full = [
        ("DASHBOARD_CLOUD_SECRET_ID", "dashboard/gateway-client"),
        ("DASHBOARD_CLOUD_TOKEN_URL", "http://127.0.0.1:9000/oauth2/token"),
        ("DASHBOARD_CLOUD_API_URL", "http://127.0.0.1:9001/v1"),
        ("DASHBOARD_CLOUD_REQUIRED", "yes"),
    ];
    let cloud = parse(&full).unwrap().cloud.expect("configured");
    assert_eq!(cloud.secret_id, "dashboard/gateway-client");
    assert_eq!(cloud.api_url.as_str(), "http://127.0.0.1:9001/v1");
    assert!(cloud.required);
    let err = parse(&full[..2]).err().unwrap();
    assert!(err.contains("DASHBOARD_CLOUD_SECRET_ID") && err.contains("DASHBOARD_CLOUD_API_URL"), "{err}");
    assert!(parse(&full[1..]).unwrap().cloud.is_none(), "without a secret there is no cloud access");
}

#[test]
fn the_default_public_url_is_localhost_on_a_loopback_listener() {
    let s = parse(&[]).unwrap();
    assert_eq!(s.public_url_for(s.listen), "http://localhost:8080");
    assert_eq!(s.public_url_for("127.0.0.1:39001".parse().unwrap()), "http://localhost:39001");
    assert_eq!(s.public_url_for("[::1]:8080".parse().unwrap()), "http://localhost:8080");
    assert_eq!(s.public_url_for("192.0.2.7:8080".parse().unwrap()), "http://192.0.2.7:8080");
    let set = parse(&[("DASHBOARD_PUBLIC_URL", "https://dash.example/")]).unwrap();
    assert_eq!(set.public_url_for(set.listen), "https://dash.example");
    assert_eq!(s.accepted_origins(s.listen), ["http://localhost:8080", "http://127.0.0.1:8080"]);
    assert_eq!(set.accepted_origins(set.listen), ["https://dash.example"], "a configured URL is the only origin");
}

#[test]
fn an_unknown_dashboard_variable_is_named_with_the_closest_known_one() {
    let s = parse(&[]).unwrap();
    assert!(s.known_variables.contains("DASHBOARD_SESSION_IDLE_TIMEOUT"));
    assert!(s.known_variables.contains("DASHBOARD_SMTP_URL"), "every part's names are known");
    let names = ["DASHBOARD_SESION_IDLE_TIMEOUT", "DASHBOARD_LISTEN", "HOME", "DASHBOARD_REQUIRE_BROWSER"];
    let warnings = s.unknown_variables(names.iter().map(|n| n.to_string()));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("DASHBOARD_SESION_IDLE_TIMEOUT is not a setting"), "{}", warnings[0]);
    assert!(warnings[0].ends_with("did you mean DASHBOARD_SESSION_IDLE_TIMEOUT?"), "{}", warnings[0]);
}

#[test]
fn the_database_is_described_by_absolute_path_or_host_and_name_never_the_password() {
    let sqlite = DatabaseUrl::parse("data/dashboard.db").unwrap().describe();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(sqlite, format!("SQLite file {}", cwd.join("data/dashboard.db").display()));
    let pg = DatabaseUrl::parse("postgres://app:s3cret@db.internal:5433/dash?sslmode=require").unwrap().describe();
    assert_eq!(pg, "PostgreSQL database `dash` on db.internal:5433");
    assert!(!pg.contains("s3cret"));
}
