//! TLS and authentication of the search sink, against a real HTTPS server.
//!
//! The search test servers speak plain HTTP and have no authentication, so
//! these tests point the sink at the test kube-apiserver instead: a real TLS
//! server with its own CA, bearer-token authentication and client
//! certificates. It is not a search cluster, but what is tested here happens
//! before any search API is used: the handshake, the certificate checks, and
//! how 401/403 on `GET /` are reported.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use util::Kwex;
use util::kube::cluster;

fn https_url() -> String {
    std::env::var("KWEX_TEST_KAPI_URL").expect("KWEX_TEST_KAPI_URL: run with cargo xtask test")
}

fn sink(extra: &[&str]) -> Kwex {
    Kwex::new()
        .args(["replay", "--sink", "search", "--url", &https_url()])
        .args(extra)
        .arg("-")
}

/// The failure message of a replay (stderr, checked for panics).
fn failure(out: &util::Output) -> String {
    let stderr = out.stderr_text();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

#[test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
fn an_untrusted_certificate_stops_kwex_naming_the_fix() {
    let out = sink(&[]).run();
    assert_eq!(out.status.code(), Some(1));
    let error = failure(&out);
    assert!(error.contains("TLS with https://127.0.0.1:"), "{error}");
    assert!(error.contains("--ca-file"), "{error}");
}

#[test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
fn with_the_ca_the_handshake_succeeds_and_refused_credentials_are_named() {
    let ca = cluster().dir.join("ca.crt");
    // No credentials: the server refuses anonymous access to `/` (403).
    let out = sink(&["--ca-file", ca.to_str().unwrap()]).run();
    assert_eq!(out.status.code(), Some(1));
    let error = failure(&out);
    assert!(
        error.contains("refused kwex's credentials (HTTP 403"),
        "{error}"
    );
    // A wrong bearer token: 401.
    let out = sink(&["--ca-file", ca.to_str().unwrap()])
        .env("KWEX_BEARER_TOKEN", "not-the-token")
        .run();
    assert_eq!(out.status.code(), Some(1));
    assert!(failure(&out).contains("(HTTP 401"), "{}", out.stderr_text());
    // The right one is accepted (the token never shows in the logs).
    let out = sink(&["--ca-file", ca.to_str().unwrap()])
        .env("KWEX_BEARER_TOKEN", "kwex-admin-token")
        .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(!out.stderr_text().contains("kwex-admin-token"));
}

#[test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
fn a_client_certificate_authenticates() {
    let dir = cluster().dir;
    let (cert, key) = client_certificate(&dir);
    let ca = dir.join("ca.crt");
    let out = sink(&[
        "--ca-file",
        ca.to_str().unwrap(),
        "--client-cert-file",
        cert.to_str().unwrap(),
        "--client-key-file",
        key.to_str().unwrap(),
    ])
    .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    let out = sink(&[
        "--ca-file",
        ca.to_str().unwrap(),
        "--client-cert-file",
        "/nonexistent.pem",
        "--client-key-file",
        key.to_str().unwrap(),
    ])
    .run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("cannot read client certificate /nonexistent.pem"),
        "{}",
        out.stderr_text()
    );
}

#[test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
fn insecure_skip_verify_skips_the_check_and_says_so() {
    let out = sink(&["--insecure-skip-verify"])
        .env("KWEX_BEARER_TOKEN", "kwex-admin-token")
        .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    assert!(
        out.stderr_text()
            .contains("TLS certificate verification is OFF"),
        "{}",
        out.stderr_text()
    );
}

/// A client certificate for user `admin` in group `system:masters`, signed by the test CA.
fn client_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let work = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-client-cert-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&work).unwrap();
    let (key, csr, cert) = (
        work.join("client.key"),
        work.join("client.csr"),
        work.join("client.crt"),
    );
    let ok = |cmd: &mut Command| {
        assert!(
            cmd.stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        )
    };
    ok(Command::new("openssl")
        .args([
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/O=system:masters/CN=admin",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&csr));
    // Extensions make it an X.509 v3 certificate (rustls refuses v1).
    let ext = work.join("client.ext");
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n").unwrap();
    ok(Command::new("openssl")
        .args(["x509", "-req", "-days", "1", "-in"])
        .arg(&csr)
        .arg("-extfile")
        .arg(&ext)
        .arg("-CA")
        .arg(dir.join("pki/ca.crt"))
        .arg("-CAkey")
        .arg(dir.join("pki/ca.key"))
        .arg("-CAcreateserial")
        .arg("-out")
        .arg(&cert));
    (cert, key)
}
