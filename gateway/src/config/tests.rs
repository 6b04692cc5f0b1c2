//! Parsing and validation of the configuration: every bad value names its variable.

use clap::{CommandFactory, FromArgMatches};

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

#[test]
fn defaults_are_valid_and_demo_mode() {
    let c = Config::from_args(Args::defaults()).expect("defaults");
    assert!(c.jwt.is_none());
    assert_eq!(c.listen_addr, "0.0.0.0:8080".parse().expect("addr"));
    assert_eq!(c.heartbeat, Duration::from_secs(15));
    assert_eq!((c.header_timeout, c.keepalive_timeout), (Duration::from_secs(10), Duration::from_secs(75)));
    assert_eq!(c.clock_interval, Some(Duration::from_secs(5)));
}

fn err_var(args: Args) -> String {
    match Config::from_args(args) {
        Err(ConfigError::Invalid { var, .. }) => var.into_owned(),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn bad_values_name_their_variable() {
    let mut a = Args::defaults();
    a.jwt_secret = Some("short".into());
    assert_eq!(err_var(a), "GATEWAY_JWT_SECRET");

    let mut a = Args::defaults();
    a.jwt_secret = Some(SECRET.into());
    a.jwt_algorithms = vec!["RS256".into()];
    assert_eq!(err_var(a), "GATEWAY_JWT_ALGORITHMS", "HS/RS confusion refused at start");

    let mut a = Args::defaults();
    a.jwt_secret = Some(SECRET.into());
    a.jwt_algorithms = vec!["none".into()];
    assert_eq!(err_var(a), "GATEWAY_JWT_ALGORITHMS");

    let mut a = Args::defaults();
    a.heartbeat = Duration::from_secs(600).into();
    assert_eq!(err_var(a), "GATEWAY_HEARTBEAT");

    let mut a = Args::defaults();
    a.header_timeout = Duration::from_millis(10).into();
    assert_eq!(err_var(a), "GATEWAY_HEADER_TIMEOUT");

    let mut a = Args::defaults();
    a.keepalive_timeout = Duration::ZERO.into();
    assert_eq!(err_var(a), "GATEWAY_KEEPALIVE_TIMEOUT");

    let mut a = Args::defaults();
    a.clock_topic = "bad topic".into();
    assert_eq!(err_var(a), "GATEWAY_CLOCK_TOPIC");

    let mut a = Args::defaults();
    a.redis_url = Some("http://not-redis".into());
    assert_eq!(err_var(a), "GATEWAY_REDIS_URL");

    for ok in [
        "redis-cluster://127.0.0.1:7000?node=127.0.0.1:7001",
        "redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=gw",
        "rediss://127.0.0.1:6380",
        "rediss-cluster://127.0.0.1:7000",
    ] {
        assert!(RedisUrl::parse(ok).is_ok(), "{ok}");
    }

    // A CA file needs a TLS URL, and must hold certificates.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures/rsa_public.pem");
    let mut a = Args::defaults();
    a.redis_url = Some("redis://127.0.0.1:6379".into());
    a.redis_ca_file = Some(fixture.into());
    assert_eq!(err_var(a), "GATEWAY_REDIS_CA_FILE", "only with rediss://");
    let mut a = Args::defaults();
    a.redis_url = Some("rediss://127.0.0.1:6380".into());
    a.redis_ca_file = Some(fixture.into());
    assert_eq!(err_var(a), "GATEWAY_REDIS_CA_FILE", "a public key is not a certificate");
    let mut a = Args::defaults();
    a.redis_url = Some("rediss://127.0.0.1:6380".into());
    a.redis_ca_file = Some("/nonexistent/ca.pem".into());
    assert_eq!(err_var(a), "GATEWAY_REDIS_CA_FILE");

    let url = RedisUrl::parse("redis://user:s3cret@10.0.0.1:6379/2").expect("valid");
    assert_eq!(format!("{url:?}"), "redis://***@10.0.0.1:6379/2", "no password in Debug");

    let mut a = Args::defaults();
    a.redis_prefix = "a{b}".into();
    assert_eq!(err_var(a), "GATEWAY_REDIS_PREFIX");

    for bad in ["otel-collector:4317", "https://otel-collector:4317", "http://", "not a url"] {
        let mut a = Args::defaults();
        a.otel_exporter_otlp_endpoint = Some(bad.into());
        assert_eq!(err_var(a), "OTEL_EXPORTER_OTLP_ENDPOINT", "{bad}");
    }
}

/// Parses a command line as `Args::defaults` does: without the process environment.
fn args_from(argv: &[&str]) -> Args {
    let matches = Args::command().mut_args(|a| a.env(None::<&str>)).try_get_matches_from(argv).expect("parses");
    Args::from_arg_matches(&matches).expect("args")
}

#[test]
fn demo_tokens_with_a_configured_key_need_a_secret() {
    let mut a = Args::defaults();
    a.demo = true;
    a.jwt_public_key = Some(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures/rsa_public.pem").into());
    assert_eq!(err_var(a), "GATEWAY_DEMO", "nothing can sign with a public key");

    let mut a = Args::defaults();
    a.demo = true;
    a.jwt_secret = Some(SECRET.into());
    assert!(Config::from_args(a).expect("a secret can sign").demo);

    let mut a = Args::defaults();
    a.demo = true;
    assert!(Config::from_args(a).expect("no key: demo mode anyway").jwt.is_none());

    assert!(args_from(&["gateway", "--demo"]).demo);
    assert!(!args_from(&["gateway"]).demo, "off by default");
}

#[test]
fn the_healthcheck_subcommand_probes_the_listen_address_on_loopback() {
    let invocation = |argv: &[&str]| Invocation::from_args(args_from(argv));
    match invocation(&["gateway", "--listen-addr", "0.0.0.0:9000", "healthcheck", "--timeout", "750ms"]) {
        Ok(Invocation::HealthCheck(p)) => {
            assert_eq!(p.addr, "127.0.0.1:9000".parse().expect("addr"));
            assert_eq!(p.timeout, Duration::from_millis(750));
        }
        other => panic!("{other:?}"),
    }
    match invocation(&["gateway", "healthcheck"]) {
        Ok(Invocation::HealthCheck(p)) => {
            assert_eq!((p.addr.to_string(), p.timeout), ("127.0.0.1:8080".into(), Duration::from_secs(2)))
        }
        other => panic!("{other:?}"),
    }
    // The probe does not judge the server's settings: a server that started has valid ones.
    let mut a = args_from(&["gateway", "healthcheck"]);
    a.jwt_secret = Some("short".into());
    assert!(matches!(Invocation::from_args(a), Ok(Invocation::HealthCheck(_))));
    assert!(matches!(invocation(&["gateway"]), Ok(Invocation::Serve(_))));
}

#[test]
fn clap_parse_errors_name_the_variable() {
    let err = Args::try_parse_from(["gateway", "--listen-addr", "nope"]).map_err(clap_error);
    match err {
        Err(ConfigError::Invalid { var, reason }) => {
            assert_eq!(var, "GATEWAY_LISTEN_ADDR");
            assert!(reason.contains("nope"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn traces_are_on_with_an_endpoint_only() {
    assert!(Config::from_args(Args::defaults()).expect("defaults").otel.is_none());
    let mut a = Args::defaults();
    a.otel_exporter_otlp_endpoint = Some(String::new());
    assert!(Config::from_args(a).expect("empty is unset").otel.is_none());
    let mut a = Args::defaults();
    a.otel_exporter_otlp_endpoint = Some("http://otel-collector:4317".into());
    let otel = Config::from_args(a).expect("valid").otel.expect("traces on");
    assert_eq!((otel.endpoint.as_str(), otel.service_name.as_str()), ("http://otel-collector:4317", "sse-gateway"));
    let err = Args::try_parse_from(["gateway", "--otel-exporter-otlp-protocol", "http/protobuf"]).map_err(clap_error);
    assert!(matches!(err, Err(ConfigError::Invalid { var, .. }) if var == "OTEL_EXPORTER_OTLP_PROTOCOL"));
}

#[test]
fn jwks_urls_are_comma_separated_validated_and_work_alone_or_beside_a_static_key() {
    let a = args_from(&["gateway", "--jwt-jwks-url", "https://idp.example/jwks, https://other.example/keys,https://idp.example/jwks"]);
    let jwt = Config::from_args(a).expect("valid").jwt.expect("keys configured");
    let jwks = jwt.jwks.expect("a JWKS");
    let urls: Vec<&str> = jwks.urls.iter().map(|u| u.as_str()).collect();
    assert_eq!(urls, ["https://idp.example/jwks", "https://other.example/keys"], "trimmed, deduplicated, in order");
    assert_eq!((jwks.min_refresh, jwks.timeout), (Duration::from_secs(30), Duration::from_secs(5)));
    assert!(jwt.key.is_none());
    assert_eq!(jwt.algorithms, ASYMMETRIC, "every public-key algorithm; each key narrows them");

    for bad in ["idp.example/jwks", "ftp://idp.example/jwks", "https://user:pw@idp.example/jwks", "http://"] {
        let mut a = Args::defaults();
        a.jwt_jwks_url = vec![bad.into()];
        assert_eq!(err_var(a), "GATEWAY_JWT_JWKS_URL", "{bad}");
    }
    let mut a = Args::defaults();
    a.jwt_jwks_url = (0..9).map(|i| format!("https://idp{i}.example/jwks")).collect();
    assert_eq!(err_var(a), "GATEWAY_JWT_JWKS_URL", "too many");

    let jwks_args = || {
        let mut a = Args::defaults();
        a.jwt_jwks_url = vec!["https://idp.example/jwks".into()];
        a
    };
    let mut a = jwks_args();
    a.jwt_jwks_min_refresh = Duration::from_millis(10).into();
    assert_eq!(err_var(a), "GATEWAY_JWT_JWKS_MIN_REFRESH");
    let mut a = jwks_args();
    a.jwt_jwks_timeout = Duration::from_secs(600).into();
    assert_eq!(err_var(a), "GATEWAY_JWT_JWKS_TIMEOUT");
    let mut a = jwks_args();
    a.jwt_algorithms = vec!["HS256".into()];
    assert_eq!(err_var(a), "GATEWAY_JWT_ALGORITHMS", "HMAC never comes from a JWKS");
    let mut a = jwks_args();
    a.demo = true;
    assert_eq!(err_var(a), "GATEWAY_DEMO", "demo tokens need a secret");

    // Beside a secret: HS256 for the secret and the public-key algorithms for the JWKS.
    let mut a = jwks_args();
    a.jwt_secret = Some(SECRET.into());
    let jwt = Config::from_args(a).expect("valid").jwt.expect("keys");
    assert!(matches!(jwt.key, Some(KeyMaterial::Secret(_))) && jwt.jwks.is_some());
    assert_eq!(jwt.algorithms[0], jsonwebtoken::Algorithm::HS256);
    assert_eq!(jwt.algorithms.len(), 1 + ASYMMETRIC.len());
    let mut a = jwks_args();
    a.jwt_secret = Some(SECRET.into());
    a.jwt_algorithms = vec!["HS512".into(), "ES256".into()];
    assert!(Config::from_args(a).is_ok());
    let mut a = jwks_args();
    a.jwt_secret = Some(SECRET.into());
    a.jwt_algorithms = vec!["RS256".into()];
    assert_eq!(err_var(a), "GATEWAY_JWT_ALGORITHMS", "nothing left for the secret");
    let mut a = jwks_args();
    a.jwt_secret = Some(SECRET.into());
    a.jwt_algorithms = vec!["HS256".into()];
    assert_eq!(err_var(a), "GATEWAY_JWT_ALGORITHMS", "nothing left for the JWKS");
}

#[test]
fn the_ticket_ttl_defaults_to_30s_and_is_bounded() {
    assert_eq!(Config::from_args(Args::defaults()).expect("defaults").ticket_ttl, Duration::from_secs(30));
    for bad in [Duration::from_millis(500), Duration::from_secs(301)] {
        let mut a = Args::defaults();
        a.ticket_ttl = bad.into();
        assert_eq!(err_var(a), "GATEWAY_TICKET_TTL", "{bad:?}");
    }
    let mut a = Args::defaults();
    a.ticket_ttl = Duration::from_secs(1).into();
    assert_eq!(Config::from_args(a).expect("1s is allowed").ticket_ttl, Duration::from_secs(1));
}

#[test]
fn the_mercure_hub_is_off_by_default_and_each_setting_is_checked() {
    assert!(Config::from_args(Args::defaults()).expect("defaults").mercure.is_none());
    let with = |edit: &dyn Fn(&mut Args)| {
        let mut a = Args::defaults();
        edit(&mut a);
        a
    };
    assert_eq!(err_var(with(&|a| a.mercure = "v1".into())), "GATEWAY_MERCURE");
    assert_eq!(err_var(with(&|a| a.mercure_anonymous = true)), "GATEWAY_MERCURE_ANONYMOUS", "useless with the hub off");
    assert_eq!(err_var(with(&|a| a.mercure_issuers = Some("https://i".into()))), "GATEWAY_MERCURE_ISSUERS");
    let legacy = |a: &mut Args| a.mercure = "0.x".into();
    assert_eq!(
        err_var(with(&|a| {
            legacy(a);
            a.mercure_resource = Some("https://hub".into());
        })),
        "GATEWAY_MERCURE_RESOURCE",
        "0.x tokens have no audience rule"
    );
    assert_eq!(
        err_var(with(&|a| {
            legacy(a);
            a.mercure_subscriptions = true;
        })),
        "GATEWAY_MERCURE_SUBSCRIPTIONS",
        "subscription events are a 1.0 feature here"
    );
    let c = Config::from_args(with(&|a| {
        legacy(a);
        a.mercure_anonymous = true;
    }))
    .expect("0.x");
    let m = c.mercure.expect("on");
    assert!(m.anonymous && m.access.is_none());
    assert_eq!(m.hub_url.as_str(), "http://localhost/.well-known/mercure");

    let v1 = |a: &mut Args| a.mercure = "1.0".into();
    assert_eq!(err_var(with(&|a| v1(a))), "GATEWAY_MERCURE_RESOURCE", "no audience to check");
    assert_eq!(
        err_var(with(&|a| {
            v1(a);
            a.public_url = Some("https://example.com/".into());
        })),
        "GATEWAY_MERCURE_ISSUERS",
        "no issuer to trust"
    );
    let c = Config::from_args(with(&|a| {
        v1(a);
        a.public_url = Some("https://example.com/".into());
        a.mercure_issuers = Some(" https://a.example , https://b.example,".into());
    }))
    .expect("1.0");
    let access = c.mercure.expect("on").access.expect("1.0 policy");
    assert_eq!(access.resource, "https://example.com/.well-known/mercure", "the audience defaults to the hub URL");
    assert_eq!(access.issuers, ["https://a.example", "https://b.example"]);
}
