//! The HTTP transport to OpenSearch / Elasticsearch.
//!
//! Built on reqwest rather than the `opensearch` crate (see
//! `docs/decisions/2026-11-25-bulk-sink.md`): kwex builds `_bulk` bodies
//! itself from bytes it already has, needs the raw status of every response,
//! signs with SigV4 itself, and gzips itself; the crate would add a second
//! TLS stack and the AWS SDK for little else.
//!
//! Several URLs may be given: requests go round-robin, and a request that
//! cannot connect moves on to the next URL before it counts as failed.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};

use super::super::aws::credentials::CredentialsProvider;

/// How kwex proves who it is.
#[derive(Clone, Default)]
pub enum Auth {
    /// Nothing (a cluster without security, or mTLS only).
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        /// User name.
        username: String,
        /// Password (from `KWEX_PASSWORD` or `--password-file`).
        password: String,
    },
    /// Elasticsearch API key (`Authorization: ApiKey …`), base64 `id:key` as Kibana shows it.
    ApiKey(String),
    /// A bearer token (`Authorization: Bearer …`).
    Bearer(String),
    /// AWS Signature V4 (Amazon OpenSearch Service: service `es`; Serverless: `aoss`).
    SigV4 {
        /// e.g. `eu-west-1`.
        region: String,
        /// `es` or `aoss`.
        service: String,
        /// The standard AWS credential chain.
        credentials: Arc<CredentialsProvider>,
    },
}

impl std::fmt::Debug for Auth {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, password hidden)"),
            Auth::ApiKey(_) => f.write_str("ApiKey(hidden)"),
            Auth::Bearer(_) => f.write_str("Bearer(hidden)"),
            Auth::SigV4 {
                region, service, ..
            } => write!(f, "SigV4({region}, {service})"),
        }
    }
}

/// Everything the transport needs; built by `config`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Cluster URLs (at least one).
    pub urls: Vec<Url>,
    /// Authentication.
    pub auth: Auth,
    /// Extra CA certificate(s) to trust (PEM).
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM) for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Accept any server certificate (logged as a warning at start).
    pub insecure_skip_verify: bool,
    /// gzip request bodies.
    pub gzip: bool,
    /// Bound on one request, from connect to the last byte of the answer.
    pub request_timeout: Duration,
}

/// The transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A certificate or key file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key is not valid PEM.
    #[error("{what} {path} is not usable: {message}")]
    BadPem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A request that did not get an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection (refused, DNS, TLS handshake…); the message has the cause.
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The URL tried last.
        url: String,
        /// The cause chain.
        message: String,
    },
    /// No complete answer within the request timeout.
    #[error("no answer from {url} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The connection broke, or anything else.
    #[error("request to {url} failed: {message}")]
    Other {
        /// The URL.
        url: String,
        /// The cause chain.
        message: String,
    },
    /// SigV4 credentials could not be obtained.
    #[error("cannot sign the request: {0}")]
    Signing(String),
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// The body, decompressed.
    pub body: Bytes,
}

/// The transport; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    urls: Arc<Vec<Url>>,
    next: Arc<AtomicUsize>,
    auth: Auth,
    gzip: bool,
    timeout: Duration,
}

impl Client {
    /// Builds the transport; reads the certificate files.
    pub fn new(settings: &Settings) -> Result<Self, BuildError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(10).min(settings.request_timeout))
            .timeout(settings.request_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("kwex/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_file {
            let pem = read("CA file", path)?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| BuildError::BadPem {
                    what: "CA file",
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(BuildError::BadPem {
                    what: "CA file",
                    path: path.clone(),
                    message: "it holds no certificate".into(),
                });
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert_path, key_path)) = &settings.client_cert {
            let mut pem = read("client certificate", cert_path)?;
            pem.push(b'\n');
            pem.extend(read("client key", key_path)?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| BuildError::BadPem {
                what: "client certificate/key",
                path: cert_path.clone(),
                message: e.to_string(),
            })?;
            builder = builder.identity(identity);
        }
        if settings.insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| BuildError::Client(crate::error::chain(&e)))?;
        Ok(Self {
            http,
            urls: Arc::new(settings.urls.clone()),
            next: Arc::new(AtomicUsize::new(0)),
            auth: settings.auth.clone(),
            gzip: settings.gzip,
            timeout: settings.request_timeout,
        })
    }

    /// `POST /_bulk` with an NDJSON body.
    pub async fn bulk(&self, body: Vec<u8>) -> Result<Response, TransportError> {
        self.request(Method::POST, "/_bulk", Some(body), "application/x-ndjson")
            .await
    }

    /// Any request; `path` starts with `/`. Tries each URL once on connection errors.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Result<Response, TransportError> {
        let body: Option<Bytes> = match body {
            Some(b) if self.gzip => Some(gzip(&b).into()),
            Some(b) => Some(b.into()),
            None => None,
        };
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..self.urls.len() {
            let base = &self.urls[(start + attempt) % self.urls.len()];
            let url = join(base, path);
            match self
                .send_once(method.clone(), url.clone(), body.clone(), content_type)
                .await
            {
                Err(TransportError::Connect { url, message }) => {
                    last = Some(TransportError::Connect { url, message })
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(TransportError::Other {
            url: String::new(),
            message: "no URL configured".into(),
        }))
    }

    async fn send_once(
        &self,
        method: Method,
        url: Url,
        body: Option<Bytes>,
        content_type: &str,
    ) -> Result<Response, TransportError> {
        let mut request = self.http.request(method.clone(), url.clone());
        let mut signed_headers = Vec::new();
        if body.is_some() {
            signed_headers.push((
                CONTENT_TYPE,
                HeaderValue::from_str(content_type)
                    .unwrap_or(HeaderValue::from_static("application/json")),
            ));
            if self.gzip {
                signed_headers.push((CONTENT_ENCODING, HeaderValue::from_static("gzip")));
            }
        }
        for (name, value) in &signed_headers {
            request = request.header(name, value);
        }
        request = match &self.auth {
            Auth::None => request,
            Auth::Basic { username, password } => request.basic_auth(username, Some(password)),
            Auth::ApiKey(key) => request.header("Authorization", format!("ApiKey {key}")),
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::SigV4 {
                region,
                service,
                credentials,
            } => {
                let creds = credentials
                    .credentials()
                    .await
                    .map_err(|e| TransportError::Signing(e.to_string()))?;
                let headers = super::super::aws::sigv4::sign_request(
                    &method,
                    &url,
                    &signed_headers,
                    body.as_deref().unwrap_or_default(),
                    &creds,
                    region,
                    service,
                )
                .map_err(|e| TransportError::Signing(e.to_string()))?;
                headers
                    .into_iter()
                    .fold(request, |r, (name, value)| r.header(name, value))
            }
        };
        if let Some(body) = body {
            request = request.body(body);
        }
        let shown = redact(&url);
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&shown, &e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&shown, &e))?;
        Ok(Response { status, body })
    }

    fn transport_error(&self, url: &str, e: &reqwest::Error) -> TransportError {
        let url = url.to_owned();
        if e.is_timeout() {
            TransportError::Timeout {
                url,
                timeout: self.timeout,
            }
        } else if e.is_connect() {
            TransportError::Connect {
                url,
                message: crate::error::chain(e),
            }
        } else {
            TransportError::Other {
                url,
                message: crate::error::chain(e),
            }
        }
    }

    /// The first URL, for log lines.
    pub fn first_url(&self) -> String {
        self.urls.first().map(redact).unwrap_or_default()
    }
}

fn read(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|source| BuildError::ReadFile {
        what,
        path: path.clone(),
        source,
    })
}

fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    let (path, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    url.set_path(&format!("{prefix}{path}"));
    url.set_query(query);
    url
}

/// A URL without user info, for logs.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::fast(),
    );
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_join_under_a_base_path() {
        let base = Url::parse("https://search.example:9200/prefix/").unwrap();
        assert_eq!(
            join(&base, "/_bulk").as_str(),
            "https://search.example:9200/prefix/_bulk"
        );
        let base = Url::parse("http://localhost:9200").unwrap();
        assert_eq!(
            join(&base, "/_count?q=a").as_str(),
            "http://localhost:9200/_count?q=a"
        );
    }

    #[test]
    fn logged_urls_carry_no_credentials() {
        let url = Url::parse("https://user:secret@search.example/").unwrap();
        assert_eq!(redact(&url), "https://search.example/");
    }

    #[test]
    fn auth_debug_hides_secrets() {
        let auth = Auth::Basic {
            username: "kwex".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
        assert!(!format!("{:?}", Auth::ApiKey("k3y".into())).contains("k3y"));
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data = b"{\"create\":{}}\n{}\n".repeat(100);
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&data)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
