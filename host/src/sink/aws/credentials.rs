//! Where AWS credentials come from: the standard chain, without the AWS SDK.
//!
//! [`CredentialsProvider`] looks, in this order, at:
//!
//! 1. the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!    `AWS_SESSION_TOKEN`;
//! 2. web identity, which is how IAM roles for service accounts (IRSA) work
//!    on EKS: `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` (and
//!    `AWS_ROLE_SESSION_NAME`), exchanged at STS by `AssumeRoleWithWebIdentity`;
//! 3. container credentials, which is how EKS Pod Identity and ECS task
//!    roles work: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with the token of
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` or
//!    `AWS_CONTAINER_AUTHORIZATION_TOKEN`;
//! 4. static keys in the shared files `~/.aws/credentials` and `~/.aws/config`
//!    (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, `AWS_PROFILE`);
//! 5. the EC2 instance role, through IMDSv2 (unless
//!    `AWS_EC2_METADATA_DISABLED=true`).
//!
//! A source that is not configured is skipped; a source that is configured
//! but fails stops the chain with an error, rather than falling through to
//! another identity (a broken IRSA setup must not silently become the node's
//! role). Temporary credentials are cached until five minutes before they
//! expire. Nothing here logs or displays a secret key or a session token.
//!
//! The provider reads an [`Env`] given to it, not the process environment,
//! so that tests can describe any setup without touching global state.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tokio::sync::{Mutex, OnceCell};

/// Credentials are refreshed this long before they expire, so that a request
/// signed just before expiry still reaches AWS in time.
const REFRESH_BEFORE_EXPIRY: TimeDelta = TimeDelta::minutes(5);

/// Where ECS and EKS Pod Identity agents answer `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`.
const CONTAINER_BASE: &str = "http://169.254.170.2";
/// The EC2 instance metadata service.
const IMDS_BASE: &str = "http://169.254.169.254";
/// How long an IMDSv2 session token lives (the maximum, six hours).
const IMDS_TOKEN_TTL_SECONDS: &str = "21600";
/// IMDS answers in microseconds on EC2; elsewhere it never answers.
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
/// The container agent runs on the same host.
const CONTAINER_TIMEOUT: Duration = Duration::from_secs(5);
const STS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const STS_TIMEOUT: Duration = Duration::from_secs(15);

/// Regions whose STS requests go to the global endpoint when
/// `AWS_STS_REGIONAL_ENDPOINTS=legacy`.
const LEGACY_GLOBAL_STS_REGIONS: &[&str] = &[
    "ap-northeast-1",
    "ap-south-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "aws-global",
    "ca-central-1",
    "eu-central-1",
    "eu-north-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

/// What to do when nothing was found, appended to [`CredentialsError::NotFound`].
const REMEDY: &str = "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run the pod with an IAM \
                      role for its service account (IRSA: annotate the service account with \
                      eks.amazonaws.com/role-arn) or an EKS Pod Identity association";

/// Form values: everything but unreserved characters is percent-encoded.
const FORM_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An AWS access key, with its session token when it is temporary.
///
/// `Debug` shows the access key id (an identifier, not a secret) and never
/// the secret key or the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id (`AKIA…` for long-term keys, `ASIA…` for temporary ones).
    pub access_key_id: String,
    /// The secret key, which signs requests and never leaves the process.
    pub secret_access_key: String,
    /// The session token of temporary credentials, sent with each request.
    pub session_token: Option<String>,
    /// When temporary credentials stop working; `None` for long-term keys.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Credentials {
    /// Credentials from their parts.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
            expires_at,
        }
    }

    /// Whether these credentials can still be handed out at `now` without a refresh.
    fn fresh_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at
            .is_none_or(|expires_at| now + REFRESH_BEFORE_EXPIRY < expires_at)
    }

    /// Whether these credentials still work at `now`.
    fn valid_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|expires_at| now < expires_at)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The environment the credential chain reads: variables and a home directory.
///
/// Production code takes a snapshot of the process with [`Env::process`];
/// tests build one with [`Env::from_map`]. An empty variable counts as unset,
/// as in the AWS SDKs.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    home: Option<PathBuf>,
}

impl Env {
    /// The process's `AWS_*` variables and its home directory (`HOME`, or
    /// `USERPROFILE` on Windows).
    pub fn process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
            .filter(|(name, _)| name.starts_with("AWS_"))
            .collect();
        let home = std::env::var_os("HOME")
            .or_else(|| std::env::var_os("USERPROFILE"))
            .filter(|home| !home.is_empty())
            .map(PathBuf::from);
        Self { vars, home }
    }

    /// Exactly these variables, and no home directory (see [`Env::with_home`]).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            home: None,
        }
    }

    /// Sets the home directory, where `.aws/credentials` and `.aws/config` are looked for.
    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.home = Some(home.into());
        self
    }

    /// A variable's value; `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The region from `AWS_REGION` or `AWS_DEFAULT_REGION`.
    pub fn region(&self) -> Option<&str> {
        self.get("AWS_REGION")
            .or_else(|| self.get("AWS_DEFAULT_REGION"))
    }

    /// A path from a variable, with a leading `~/` meaning the home directory.
    fn path(&self, name: &str) -> Option<PathBuf> {
        let value = self.get(name)?;
        match (value.strip_prefix("~/"), &self.home) {
            (Some(rest), Some(home)) => Some(home.join(rest)),
            _ => Some(PathBuf::from(value)),
        }
    }
}

impl fmt::Debug for Env {
    /// Names only: the values include secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env")
            .field("vars", &names)
            .field("home", &self.home)
            .finish()
    }
}

/// One place credentials can come from, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    Environment,
    /// IRSA: a web identity token exchanged at STS.
    WebIdentity,
    /// EKS Pod Identity or ECS: the container credentials endpoint.
    Container,
    /// Static keys in `~/.aws/credentials` or `~/.aws/config`.
    Profile,
    /// The EC2 instance role, through IMDSv2.
    InstanceMetadata,
}

impl Source {
    /// The chain, in order.
    pub const CHAIN: [Source; 5] = [
        Source::Environment,
        Source::WebIdentity,
        Source::Container,
        Source::Profile,
        Source::InstanceMetadata,
    ];
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Environment => "environment variables",
            Source::WebIdentity => "web identity (IRSA)",
            Source::Container => "container credentials (EKS Pod Identity / ECS)",
            Source::Profile => "shared config files",
            Source::InstanceMetadata => "EC2 instance metadata (IMDSv2)",
        })
    }
}

/// A source that was tried and skipped, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The source.
    pub source: Source,
    /// Why it gave nothing, e.g. "AWS_ACCESS_KEY_ID is not set".
    pub reason: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.source, self.reason)
    }
}

/// Joins attempts for an error message.
fn attempts_text(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(Attempt::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Attempts before a failing source, for an error message ("" when none).
fn skipped_text(attempts: &[Attempt]) -> String {
    if attempts.is_empty() {
        String::new()
    } else {
        format!(" (skipped before it: {})", attempts_text(attempts))
    }
}

/// No credentials could be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Every source was skipped.
    #[error("no AWS credentials found; tried {}. {REMEDY}", attempts_text(.attempts))]
    NotFound {
        /// Each source and why it gave nothing.
        attempts: Vec<Attempt>,
    },
    /// A configured source failed; the chain stops there.
    #[error("AWS credentials from {from} failed: {error}{}", skipped_text(.attempts))]
    SourceFailed {
        /// The source that failed.
        from: Source,
        /// How it failed.
        #[source]
        error: SourceError,
        /// The sources skipped before it.
        attempts: Vec<Attempt>,
    },
}

/// How a configured source failed, named after the step that failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Half of a pair of variables is set.
    #[error("{present} is set but {missing} is not; set both, or neither")]
    ReadEnvironment {
        /// The variable that is set.
        present: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build an HTTP client: {0}")]
    BuildHttpClient(#[source] reqwest::Error),
    /// The web identity token file could not be read.
    #[error(
        "cannot read the web identity token file {path} (AWS_WEB_IDENTITY_TOKEN_FILE; is the \
         service account token volume mounted?): {source}"
    )]
    ReadWebIdentityToken {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The STS endpoint is not a URL.
    #[error("the STS endpoint `{endpoint}` (AWS_ENDPOINT_URL_STS) is not a valid URL")]
    StsEndpoint {
        /// The endpoint as configured.
        endpoint: String,
    },
    /// STS could not be reached.
    #[error("cannot reach STS at {endpoint}: {source}")]
    CallSts {
        /// Where the request went.
        endpoint: Url,
        /// Why it failed.
        #[source]
        source: reqwest::Error,
    },
    /// STS refused the token or the role.
    #[error(
        "STS refused AssumeRoleWithWebIdentity for {role_arn} with HTTP {status} {code}: {message} \
         (check that the role exists and that its trust policy allows this service account)"
    )]
    AssumeRole {
        /// The role asked for.
        role_arn: String,
        /// The HTTP status.
        status: u16,
        /// STS's error code, e.g. `InvalidIdentityToken`.
        code: String,
        /// STS's message.
        message: String,
    },
    /// STS answered something that is not an `AssumeRoleWithWebIdentityResponse`.
    #[error("cannot read STS's AssumeRoleWithWebIdentity response: {0}")]
    ReadStsResponse(String),
    /// The container credentials URI is unusable.
    #[error("cannot use the container credentials URI `{uri}`: {reason}")]
    ContainerUri {
        /// The URI as configured.
        uri: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The container authorization token could not be read.
    #[error(
        "cannot read the container authorization token file {path} (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE): {source}"
    )]
    ReadContainerToken {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The container authorization token cannot be sent as a header.
    #[error("the container authorization token is not a valid HTTP header value")]
    ContainerTokenValue,
    /// The container credentials endpoint could not be reached.
    #[error("cannot reach the container credentials endpoint {url}: {source}")]
    CallContainerEndpoint {
        /// Where the request went.
        url: Url,
        /// Why it failed.
        #[source]
        source: reqwest::Error,
    },
    /// The container credentials endpoint answered with an error.
    #[error("the container credentials endpoint {url} answered HTTP {status}: {message}")]
    ContainerRefused {
        /// Where the request went.
        url: Url,
        /// The HTTP status.
        status: u16,
        /// The endpoint's message, if it gave one.
        message: String,
    },
    /// The container credentials endpoint answered something unreadable.
    #[error("cannot read the container credentials response: {0}")]
    ReadContainerResponse(String),
    /// A shared config file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    ReadProfileFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The selected profile is missing or has no usable static keys.
    #[error("profile `{profile}`: {reason}")]
    Profile {
        /// The profile (`AWS_PROFILE`).
        profile: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The instance metadata service answered the credentials request with
    /// something unusable.
    #[error("cannot read the instance role credentials from IMDS: {0}")]
    ReadImdsCredentials(String),
    /// An expiration time is not an RFC 3339 time.
    #[error("the credentials' expiration `{value}` is not an RFC 3339 time")]
    ReadExpiration {
        /// The value received.
        value: String,
    },
}

/// What trying one source gave, when it did not fail.
enum Outcome {
    Found(Credentials),
    Skipped(String),
}

/// The HTTP clients, built on first use (building one loads TLS roots).
struct Clients {
    /// STS over the network, honoring proxy settings.
    remote: reqwest::Client,
    /// Loopback and link-local endpoints: never through a proxy.
    local: reqwest::Client,
}

impl Clients {
    fn build() -> Result<Self, SourceError> {
        let remote = reqwest::Client::builder()
            .connect_timeout(STS_CONNECT_TIMEOUT)
            .timeout(STS_TIMEOUT)
            .build()
            .map_err(SourceError::BuildHttpClient)?;
        let local = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(IMDS_TIMEOUT)
            .build()
            .map_err(SourceError::BuildHttpClient)?;
        Ok(Self { remote, local })
    }

    /// The client for `url`: the local one for loopback and link-local hosts.
    fn for_url(&self, url: &Url) -> &reqwest::Client {
        if is_local(url) {
            &self.local
        } else {
            &self.remote
        }
    }
}

/// The EKS Pod Identity agent's IPv6 address.
const EKS_POD_IDENTITY_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x23);
/// The ECS agent's address.
const ECS_AGENT_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
/// The EKS Pod Identity agent's IPv4 address.
const EKS_POD_IDENTITY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);

/// The IP address of `url`'s host, when it is one.
fn host_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Whether `url` points at this machine or a link-local agent (and so must
/// not go through an HTTP proxy).
fn is_local(url: &Url) -> bool {
    if url
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case("localhost"))
    {
        return true;
    }
    match host_ip(url) {
        Some(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(IpAddr::V6(ip)) => ip.is_loopback() || ip == EKS_POD_IDENTITY_V6,
        None => false,
    }
}

/// Resolves AWS credentials through the standard chain and caches them.
///
/// Share one provider (in an `Arc`) between everything that signs: each call
/// to [`credentials`](Self::credentials) returns the cached credentials until
/// five minutes before they expire, and concurrent callers wait for a single
/// refresh.
pub struct CredentialsProvider {
    env: Env,
    cache: Mutex<Option<Credentials>>,
    clients: OnceCell<Clients>,
}

impl fmt::Debug for CredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsProvider")
            .field("env", &self.env)
            .finish_non_exhaustive()
    }
}

impl CredentialsProvider {
    /// A provider reading `env`: [`Env::process`] in production.
    ///
    /// Nothing is read or fetched until the first call to
    /// [`credentials`](Self::credentials).
    pub fn from_env(env: Env) -> Self {
        Self {
            env,
            cache: Mutex::new(None),
            clients: OnceCell::new(),
        }
    }

    /// Credentials to sign with: the cached ones while they have more than
    /// five minutes left, else freshly resolved ones.
    ///
    /// When a refresh fails but the cached credentials have not expired yet,
    /// they are returned (with a warning), so that a short STS or agent outage
    /// does not stop shipping.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let mut cache = self.cache.lock().await;
        let now = Utc::now();
        if let Some(cached) = cache.as_ref()
            && cached.fresh_at(now)
        {
            return Ok(cached.clone());
        }
        match self.resolve().await {
            Ok((credentials, source)) => {
                tracing::info!(
                    source = %source,
                    expires_at = ?credentials.expires_at,
                    temporary = credentials.session_token.is_some(),
                    "loaded AWS credentials"
                );
                *cache = Some(credentials.clone());
                Ok(credentials)
            }
            Err(error) => match cache.as_ref() {
                Some(cached) if cached.valid_at(now) => {
                    tracing::warn!(
                        error = %error,
                        expires_at = ?cached.expires_at,
                        "cannot refresh AWS credentials; using the current ones until they expire"
                    );
                    Ok(cached.clone())
                }
                _ => Err(error),
            },
        }
    }

    /// Walks the chain once, without the cache.
    async fn resolve(&self) -> Result<(Credentials, Source), CredentialsError> {
        let mut attempts = Vec::new();
        for source in Source::CHAIN {
            match self.try_source(source).await {
                Ok(Outcome::Found(credentials)) => return Ok((credentials, source)),
                Ok(Outcome::Skipped(reason)) => {
                    tracing::debug!(source = %source, reason = %reason, "AWS credentials source skipped");
                    attempts.push(Attempt { source, reason });
                }
                Err(error) => {
                    return Err(CredentialsError::SourceFailed {
                        from: source,
                        error,
                        attempts,
                    });
                }
            }
        }
        Err(CredentialsError::NotFound { attempts })
    }

    async fn try_source(&self, source: Source) -> Result<Outcome, SourceError> {
        match source {
            Source::Environment => self.load_environment(),
            Source::WebIdentity => self.load_web_identity().await,
            Source::Container => self.load_container().await,
            Source::Profile => self.load_profile().await,
            Source::InstanceMetadata => self.load_instance_metadata().await,
        }
    }

    async fn clients(&self) -> Result<&Clients, SourceError> {
        self.clients
            .get_or_try_init(|| async { Clients::build() })
            .await
    }

    /// (a) `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    fn load_environment(&self) -> Result<Outcome, SourceError> {
        const ID: &str = "AWS_ACCESS_KEY_ID";
        const SECRET: &str = "AWS_SECRET_ACCESS_KEY";
        match (self.env.get(ID), self.env.get(SECRET)) {
            (Some(id), Some(secret)) => Ok(Outcome::Found(Credentials::new(
                id,
                secret,
                self.env.get("AWS_SESSION_TOKEN").map(str::to_owned),
                None,
            ))),
            (Some(_), None) => Err(SourceError::ReadEnvironment {
                present: ID,
                missing: SECRET,
            }),
            (None, Some(_)) => Err(SourceError::ReadEnvironment {
                present: SECRET,
                missing: ID,
            }),
            (None, None) => Ok(Outcome::Skipped(format!("{ID} is not set"))),
        }
    }

    /// (b) IRSA: `AssumeRoleWithWebIdentity` with the projected token.
    async fn load_web_identity(&self) -> Result<Outcome, SourceError> {
        const TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
        let Some(token_file) = self.env.path(TOKEN_FILE) else {
            return Ok(Outcome::Skipped(format!("{TOKEN_FILE} is not set")));
        };
        let Some(role_arn) = self.env.get("AWS_ROLE_ARN") else {
            return Err(SourceError::ReadEnvironment {
                present: TOKEN_FILE,
                missing: "AWS_ROLE_ARN",
            });
        };
        // Read at every refresh: the kubelet rotates the token.
        let token = tokio::fs::read_to_string(&token_file)
            .await
            .map_err(|source| SourceError::ReadWebIdentityToken {
                path: token_file.clone(),
                source,
            })?;
        let token = token.trim();
        if token.is_empty() {
            return Err(SourceError::ReadWebIdentityToken {
                path: token_file,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
            });
        }
        let session_name = self
            .env
            .get("AWS_ROLE_SESSION_NAME")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("kwex-{}", Utc::now().timestamp_millis()));
        let endpoint = sts_endpoint(&self.env)?;

        // POST, so that the token travels in the body rather than in a URL.
        let body = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session_name.as_str()),
            ("WebIdentityToken", token),
        ]
        .iter()
        .map(|(name, value)| format!("{name}={}", utf8_percent_encode(value, FORM_VALUE)))
        .collect::<Vec<_>>()
        .join("&");
        let clients = self.clients().await?;
        let response = clients
            .for_url(&endpoint)
            .post(endpoint.clone())
            .timeout(STS_TIMEOUT)
            .header(
                CONTENT_TYPE,
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body)
            .send()
            .await
            .map_err(|source| SourceError::CallSts {
                endpoint: endpoint.clone(),
                source,
            })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|source| SourceError::CallSts {
                endpoint: endpoint.clone(),
                source,
            })?;
        if !status.is_success() {
            return Err(SourceError::AssumeRole {
                role_arn: role_arn.to_owned(),
                status: status.as_u16(),
                code: xml_text(&text, "Code").unwrap_or_else(|| "(no error code)".to_owned()),
                message: xml_text(&text, "Message").unwrap_or_else(|| excerpt(&text)),
            });
        }
        parse_sts_credentials(&text).map(Outcome::Found)
    }

    /// (c) EKS Pod Identity / ECS: the container credentials endpoint.
    async fn load_container(&self) -> Result<Outcome, SourceError> {
        let Some(url) = container_url(&self.env)? else {
            return Ok(Outcome::Skipped(
                "neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set"
                    .to_owned(),
            ));
        };
        // The file wins, and is read at every refresh: the agent rotates it.
        let token = match self.env.path("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
            Some(path) => Some(
                tokio::fs::read_to_string(&path)
                    .await
                    .map_err(|source| SourceError::ReadContainerToken { path, source })?
                    .trim()
                    .to_owned(),
            ),
            None => self
                .env
                .get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
                .map(str::to_owned),
        };
        let clients = self.clients().await?;
        let mut request = clients
            .for_url(&url)
            .get(url.clone())
            .timeout(CONTAINER_TIMEOUT);
        if let Some(token) = token {
            let mut value =
                HeaderValue::from_str(&token).map_err(|_| SourceError::ContainerTokenValue)?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        let call = |source| SourceError::CallContainerEndpoint {
            url: url.clone(),
            source,
        };
        let response = request.send().await.map_err(call)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(call)?;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorJson>(&bytes)
                .ok()
                .and_then(|e| e.message)
                .unwrap_or_else(|| excerpt(&String::from_utf8_lossy(&bytes)));
            return Err(SourceError::ContainerRefused {
                url,
                status: status.as_u16(),
                message,
            });
        }
        parse_json_credentials(&bytes, SourceError::ReadContainerResponse).map(Outcome::Found)
    }

    /// (d) Static keys of a profile in `~/.aws/credentials` or `~/.aws/config`.
    async fn load_profile(&self) -> Result<Outcome, SourceError> {
        let explicit = self.env.get("AWS_PROFILE");
        let profile = explicit.unwrap_or("default");
        let aws_dir = self.env.home.as_ref().map(|home| home.join(".aws"));
        let credentials_path = self
            .env
            .path("AWS_SHARED_CREDENTIALS_FILE")
            .or_else(|| aws_dir.as_ref().map(|dir| dir.join("credentials")));
        let config_path = self
            .env
            .path("AWS_CONFIG_FILE")
            .or_else(|| aws_dir.as_ref().map(|dir| dir.join("config")));
        if credentials_path.is_none() && config_path.is_none() {
            return Ok(Outcome::Skipped(
                "no home directory, and neither AWS_SHARED_CREDENTIALS_FILE nor AWS_CONFIG_FILE is set".to_owned(),
            ));
        }
        let credentials_text = read_optional(credentials_path.as_ref()).await?;
        let config_text = read_optional(config_path.as_ref()).await?;
        let files = [&credentials_path, &config_path]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ");
        if credentials_text.is_none() && config_text.is_none() {
            return Ok(Outcome::Skipped(format!("{files}: no such file")));
        }

        // Config first, then the credentials file, whose keys win.
        let config_section = if profile == "default" {
            vec!["default".to_owned(), "profile default".to_owned()]
        } else {
            vec![format!("profile {profile}")]
        };
        let mut properties: Option<HashMap<String, String>> = None;
        if let Some(text) = &config_text
            && let Some(found) = ini_section(text, &config_section)
        {
            properties.get_or_insert_default().extend(found);
        }
        if let Some(text) = &credentials_text
            && let Some(found) = ini_section(text, &[profile.to_owned()])
        {
            properties.get_or_insert_default().extend(found);
        }

        let problem = |reason: String| -> Result<Outcome, SourceError> {
            if explicit.is_some() {
                Err(SourceError::Profile {
                    profile: profile.to_owned(),
                    reason,
                })
            } else {
                Ok(Outcome::Skipped(format!("profile `{profile}`: {reason}")))
            }
        };
        let Some(properties) = properties else {
            return problem(format!("not found in {files}"));
        };
        let get = |key: &str| {
            properties
                .get(key)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => Ok(Outcome::Found(Credentials::new(
                id,
                secret,
                get("aws_session_token").map(str::to_owned),
                None,
            ))),
            (Some(_), None) | (None, Some(_)) => Err(SourceError::Profile {
                profile: profile.to_owned(),
                reason: "has only one of aws_access_key_id and aws_secret_access_key".to_owned(),
            }),
            (None, None) => {
                let unsupported: Vec<&str> = [
                    "role_arn",
                    "credential_process",
                    "sso_session",
                    "sso_start_url",
                    "web_identity_token_file",
                ]
                .into_iter()
                .filter(|key| properties.contains_key(*key))
                .collect();
                if unsupported.is_empty() {
                    problem("has no aws_access_key_id".to_owned())
                } else {
                    problem(format!(
                        "uses {}, which kwex does not support; give it static keys, or use IRSA or EKS Pod Identity",
                        unsupported.join(", ")
                    ))
                }
            }
        }
    }

    /// (e) The EC2 instance role, through IMDSv2.
    async fn load_instance_metadata(&self) -> Result<Outcome, SourceError> {
        if self
            .env
            .get("AWS_EC2_METADATA_DISABLED")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        {
            return Ok(Outcome::Skipped(
                "AWS_EC2_METADATA_DISABLED is true".to_owned(),
            ));
        }
        let base = self
            .env
            .get("AWS_EC2_METADATA_SERVICE_ENDPOINT")
            .unwrap_or(IMDS_BASE)
            .trim_end_matches('/');
        let client = &self.clients().await?.local;

        // Not being on EC2, or on EC2 without a role, is "not configured":
        // only an answer that cannot be read is an error.
        let token = client
            .put(format!("{base}/latest/api/token"))
            .header(
                "x-aws-ec2-metadata-token-ttl-seconds",
                IMDS_TOKEN_TTL_SECONDS,
            )
            .timeout(IMDS_TIMEOUT)
            .send()
            .await;
        let token = match token {
            Ok(response) if response.status().is_success() => match response.text().await {
                Ok(token) => token.trim().to_owned(),
                Err(error) => {
                    return Ok(Outcome::Skipped(format!("{base} is unreachable: {error}")));
                }
            },
            Ok(response) => {
                return Ok(Outcome::Skipped(format!(
                    "{base} refused a session token (HTTP {})",
                    response.status().as_u16()
                )));
            }
            Err(error) => return Ok(Outcome::Skipped(format!("{base} is unreachable: {error}"))),
        };
        let mut token_value = HeaderValue::from_str(&token).map_err(|_| {
            SourceError::ReadImdsCredentials(
                "the session token is not a valid header value".to_owned(),
            )
        })?;
        token_value.set_sensitive(true);

        let roles_url = format!("{base}/latest/meta-data/iam/security-credentials/");
        let role = match imds_get(client, &roles_url, &token_value).await {
            Ok((404, _)) => {
                return Ok(Outcome::Skipped(
                    "the instance has no IAM role (instance profile)".to_owned(),
                ));
            }
            Ok((status, body)) if (200..300).contains(&status) => {
                match body.lines().map(str::trim).find(|l| !l.is_empty()) {
                    Some(role) => role.to_owned(),
                    None => {
                        return Ok(Outcome::Skipped(
                            "the instance has no IAM role (instance profile)".to_owned(),
                        ));
                    }
                }
            }
            Ok((status, _)) => {
                return Ok(Outcome::Skipped(format!(
                    "listing the instance's role answered HTTP {status}"
                )));
            }
            Err(error) => return Ok(Outcome::Skipped(format!("{base} is unreachable: {error}"))),
        };
        let credentials_url = format!("{roles_url}{}", utf8_percent_encode(&role, FORM_VALUE));
        match imds_get(client, &credentials_url, &token_value).await {
            Ok((status, body)) if (200..300).contains(&status) => {
                parse_json_credentials(body.as_bytes(), SourceError::ReadImdsCredentials)
                    .map(Outcome::Found)
            }
            Ok((status, _)) => Err(SourceError::ReadImdsCredentials(format!(
                "the credentials of role `{role}` answered HTTP {status}"
            ))),
            Err(error) => Err(SourceError::ReadImdsCredentials(format!(
                "the credentials of role `{role}` could not be fetched: {error}"
            ))),
        }
    }
}

/// A GET to IMDS with the session token: status and body.
async fn imds_get(
    client: &reqwest::Client,
    url: &str,
    token: &HeaderValue,
) -> Result<(u16, String), reqwest::Error> {
    let response = client
        .get(url)
        .header("x-aws-ec2-metadata-token", token.clone())
        .timeout(IMDS_TIMEOUT)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

/// The STS endpoint: `AWS_ENDPOINT_URL_STS` (or `AWS_ENDPOINT_URL`) when set,
/// else the regional endpoint, or the global one when there is no region or
/// `AWS_STS_REGIONAL_ENDPOINTS=legacy` asks for it.
fn sts_endpoint(env: &Env) -> Result<Url, SourceError> {
    let endpoint = match env
        .get("AWS_ENDPOINT_URL_STS")
        .or_else(|| env.get("AWS_ENDPOINT_URL"))
    {
        Some(endpoint) => endpoint.to_owned(),
        None => {
            let legacy = env
                .get("AWS_STS_REGIONAL_ENDPOINTS")
                .is_some_and(|v| v.eq_ignore_ascii_case("legacy"));
            match env.region() {
                Some(region) if !(legacy && LEGACY_GLOBAL_STS_REGIONS.contains(&region)) => {
                    let suffix = if region.starts_with("cn-") {
                        "amazonaws.com.cn"
                    } else {
                        "amazonaws.com"
                    };
                    format!("https://sts.{region}.{suffix}")
                }
                _ => "https://sts.amazonaws.com".to_owned(),
            }
        }
    };
    Url::parse(&endpoint).map_err(|_| SourceError::StsEndpoint { endpoint })
}

/// The container credentials URL, if one is configured.
///
/// A full URI over plain HTTP must point at this machine or at the ECS or EKS
/// Pod Identity agent, as the AWS SDKs require: the request carries a token.
fn container_url(env: &Env) -> Result<Option<Url>, SourceError> {
    if let Some(relative) = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        let uri = if relative.starts_with('/') {
            format!("{CONTAINER_BASE}{relative}")
        } else {
            format!("{CONTAINER_BASE}/{relative}")
        };
        return Url::parse(&uri)
            .map(Some)
            .map_err(|_| SourceError::ContainerUri {
                uri,
                reason: "not a valid URL",
            });
    }
    let Some(full) = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
        return Ok(None);
    };
    let refuse = |reason| SourceError::ContainerUri {
        uri: full.to_owned(),
        reason,
    };
    let url = Url::parse(full).map_err(|_| refuse("not a valid URL"))?;
    let allowed = match url.scheme() {
        "https" => true,
        "http" => {
            url.host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case("localhost"))
                || match host_ip(&url) {
                    Some(IpAddr::V4(ip)) => {
                        ip.is_loopback() || ip == ECS_AGENT_V4 || ip == EKS_POD_IDENTITY_V4
                    }
                    Some(IpAddr::V6(ip)) => ip.is_loopback() || ip == EKS_POD_IDENTITY_V6,
                    None => false,
                }
        }
        _ => false,
    };
    if allowed {
        Ok(Some(url))
    } else {
        Err(refuse(
            "plain HTTP is only allowed to a loopback address or the ECS / EKS Pod Identity agent; use HTTPS",
        ))
    }
}

/// Reads a file that may not exist.
async fn read_optional(path: Option<&PathBuf>) -> Result<Option<String>, SourceError> {
    let Some(path) = path else { return Ok(None) };
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SourceError::ReadProfileFile {
            path: path.clone(),
            source,
        }),
    }
}

/// The properties of the sections named one of `names` in an AWS INI file
/// (later sections and keys win), or `None` when there is no such section.
///
/// Comment lines start with `#` or `;`; indented lines (sub-properties such
/// as `s3 =` blocks) are skipped; names are compared with runs of spaces
/// collapsed, so `[profile  x]` is `profile x`.
fn ini_section(text: &str, names: &[String]) -> Option<HashMap<String, String>> {
    let mut found: Option<HashMap<String, String>> = None;
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest.split_once(']').map_or(rest, |(name, _)| name);
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = names.contains(&name);
            if inside {
                found.get_or_insert_default();
            }
            continue;
        }
        if inside
            && let Some((key, value)) = line.split_once('=')
            && let Some(section) = found.as_mut()
        {
            section.insert(key.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    found
}

/// The JSON of the container endpoint and of IMDS (IMDS adds `Code`,
/// `Type` and `LastUpdated`). No `Debug`: it holds secrets.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonCredentials {
    code: Option<String>,
    message: Option<String>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

/// The error JSON of the container endpoint: `{"code": …, "message": …}`.
#[derive(serde::Deserialize)]
struct ErrorJson {
    message: Option<String>,
}

/// Credentials from container or IMDS JSON; `wrap` makes the error of the
/// source (messages never include secrets).
fn parse_json_credentials(
    bytes: &[u8],
    wrap: fn(String) -> SourceError,
) -> Result<Credentials, SourceError> {
    let json: JsonCredentials =
        serde_json::from_slice(bytes).map_err(|e| wrap(format!("not the expected JSON ({e})")))?;
    if let Some(code) = json.code.as_deref()
        && code != "Success"
    {
        return Err(wrap(format!(
            "the answer's Code is `{code}`: {}",
            json.message.as_deref().unwrap_or("(no message)")
        )));
    }
    let (Some(id), Some(secret)) = (json.access_key_id, json.secret_access_key) else {
        return Err(wrap("AccessKeyId or SecretAccessKey is missing".to_owned()));
    };
    let expires_at = parse_expiration(json.expiration.as_deref())?;
    Ok(Credentials::new(id, secret, json.token, expires_at))
}

/// An optional RFC 3339 expiration.
fn parse_expiration(value: Option<&str>) -> Result<Option<DateTime<Utc>>, SourceError> {
    value
        .map(|value| {
            DateTime::parse_from_rfc3339(value)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| SourceError::ReadExpiration {
                    value: value.to_owned(),
                })
        })
        .transpose()
}

/// The `<Credentials>` of an `AssumeRoleWithWebIdentityResponse`.
fn parse_sts_credentials(xml: &str) -> Result<Credentials, SourceError> {
    let missing = |what: &str| SourceError::ReadStsResponse(format!("no {what} in the answer"));
    let start = xml
        .find("<Credentials>")
        .ok_or_else(|| missing("<Credentials>"))?;
    let block = &xml[start..];
    let end = block
        .find("</Credentials>")
        .ok_or_else(|| missing("</Credentials>"))?;
    let block = &block[..end];
    let id = xml_text(block, "AccessKeyId").ok_or_else(|| missing("AccessKeyId"))?;
    let secret = xml_text(block, "SecretAccessKey").ok_or_else(|| missing("SecretAccessKey"))?;
    let token = xml_text(block, "SessionToken").ok_or_else(|| missing("SessionToken"))?;
    let expiration = xml_text(block, "Expiration");
    let expires_at = parse_expiration(expiration.as_deref())?;
    Ok(Credentials::new(id, secret, Some(token), expires_at))
}

/// The unescaped text of the first `<tag>…</tag>` in `xml`. Enough for STS's
/// answers, whose elements have no attributes or prefixes.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(xml_unescape(xml[start..start + len].trim()))
}

/// Replaces XML's five named entities and numeric character references.
fn xml_unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|dec| dec.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The start of an error body, for a message.
fn excerpt(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None if text.is_empty() => "(empty answer)".to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::Mutex as StdMutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// An environment for a test. IMDS is disabled unless the test turns it
    /// back on with a local endpoint: no test may reach 169.254.169.254.
    fn env(vars: &[(&str, &str)]) -> Env {
        let mut all = vec![("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned())];
        all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Env::from_map(all)
    }

    /// A request as a test server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        target: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A tiny HTTP/1.1 server on 127.0.0.1 answering each request with what
    /// `handler` returns, and remembering the requests.
    struct Server {
        base: String,
        seen: Arc<StdMutex<Vec<Seen>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        async fn start(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let seen = Arc::new(StdMutex::new(Vec::new()));
            let task = tokio::spawn({
                let seen = Arc::clone(&seen);
                async move {
                    while let Ok((mut stream, _)) = listener.accept().await {
                        let Some(request) = read_request(&mut stream).await else {
                            continue;
                        };
                        let (status, body) = handler(&request);
                        seen.lock().unwrap().push(request);
                        let response = format!(
                            "HTTP/1.1 {status} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                        let _ = stream.shutdown().await;
                    }
                }
            });
            Self { base, seen, task }
        }

        fn requests(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next()?.split(' ');
        let method = request_line.next()?.to_owned();
        let target = request_line.next()?.to_owned();
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        Some(Seen {
            method,
            target,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// A directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir()
                .join(format!("kwex-aws-{name}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, relative: &str, contents: &str) -> PathBuf {
            let path = self.0.join(relative);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
            path
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rfc3339(time: DateTime<Utc>) -> String {
        time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    fn sts_answer(access_key_id: &str, expires_at: DateTime<Utc>) -> String {
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:kwex:kwex</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/kwex-writer/kwex-session</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:kwex-session</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzEXAMPLE/token+with&amp;entity</SessionToken>
      <SecretAccessKey>sts-secret-EXAMPLE</SecretAccessKey>
      <Expiration>{}</Expiration>
      <AccessKeyId>{access_key_id}</AccessKeyId>
    </Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#,
            rfc3339(expires_at)
        )
    }

    fn container_answer(access_key_id: &str, expires_at: DateTime<Utc>) -> String {
        format!(
            r#"{{"AccessKeyId":"{access_key_id}","SecretAccessKey":"container-secret-EXAMPLE","Token":"container-token-EXAMPLE","AccountId":"123456789012","Expiration":"{}"}}"#,
            rfc3339(expires_at)
        )
    }

    fn imds_answer(access_key_id: &str, expires_at: DateTime<Utc>) -> String {
        format!(
            "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2024-04-26T16:39:16Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"{access_key_id}\",\n  \"SecretAccessKey\" : \"imds-secret-EXAMPLE\",\n  \"Token\" : \"imds-token-EXAMPLE\",\n  \"Expiration\" : \"{}\"\n}}",
            rfc3339(expires_at)
        )
    }

    /// An STS that answers AssumeRoleWithWebIdentity with `access_key_id`.
    async fn sts_server(access_key_id: &'static str) -> Server {
        Server::start(move |_| {
            (
                200,
                sts_answer(access_key_id, Utc::now() + TimeDelta::hours(1)),
            )
        })
        .await
    }

    /// A container credentials endpoint that answers with `access_key_id`.
    async fn container_server(access_key_id: &'static str) -> Server {
        Server::start(move |_| {
            (
                200,
                container_answer(access_key_id, Utc::now() + TimeDelta::hours(6)),
            )
        })
        .await
    }

    /// IMDSv2 with role `kwex-node-role`, checking the session token.
    async fn imds_server(access_key_id: &'static str) -> Server {
        Server::start(move |req| {
            let token_ok = req.header("x-aws-ec2-metadata-token") == Some("imds-session-token");
            match (req.method.as_str(), req.target.as_str()) {
                ("PUT", "/latest/api/token")
                    if req.header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
                {
                    (200, "imds-session-token".to_owned())
                }
                (_, _) if !token_ok => (401, String::new()),
                ("GET", "/latest/meta-data/iam/security-credentials/") => {
                    (200, "kwex-node-role".to_owned())
                }
                ("GET", "/latest/meta-data/iam/security-credentials/kwex-node-role") => (
                    200,
                    imds_answer(access_key_id, Utc::now() + TimeDelta::hours(6)),
                ),
                _ => (404, String::new()),
            }
        })
        .await
    }

    #[test]
    fn credentials_debug_output_never_shows_the_secret_or_the_token() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "very-secret-key",
            Some("very-secret-token".to_owned()),
            None,
        );
        let debug = format!("{creds:?}");
        assert!(debug.contains("AKIDEXAMPLE"), "{debug}");
        assert!(!debug.contains("very-secret-key"), "{debug}");
        assert!(!debug.contains("very-secret-token"), "{debug}");
    }

    #[test]
    fn env_debug_output_shows_variable_names_but_not_values() {
        let env = Env::from_map([("AWS_SECRET_ACCESS_KEY", "very-secret-key")]);
        let debug = format!("{env:?}");
        assert!(debug.contains("AWS_SECRET_ACCESS_KEY"), "{debug}");
        assert!(!debug.contains("very-secret-key"), "{debug}");
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let env = Env::from_map([("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "eu-west-1")]);
        assert_eq!(env.get("AWS_REGION"), None);
        assert_eq!(env.region(), Some("eu-west-1"));
    }

    #[tokio::test]
    async fn environment_keys_are_used_with_their_session_token() {
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
        ]));
        let creds = provider.credentials().await.unwrap();
        assert_eq!(
            creds,
            Credentials::new("AKIDENV", "env-secret", Some("env-token".to_owned()), None)
        );
    }

    #[tokio::test]
    async fn an_access_key_id_without_a_secret_names_the_missing_variable() {
        let provider = CredentialsProvider::from_env(env(&[("AWS_ACCESS_KEY_ID", "AKIDENV")]));
        let err = provider.credentials().await.unwrap_err();
        assert!(matches!(
            err,
            CredentialsError::SourceFailed {
                from: Source::Environment,
                error: SourceError::ReadEnvironment {
                    missing: "AWS_SECRET_ACCESS_KEY",
                    ..
                },
                ..
            }
        ));
        assert!(
            err.to_string().contains("AWS_SECRET_ACCESS_KEY is not"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn web_identity_exchanges_the_token_file_at_sts_for_temporary_credentials() {
        let sts = sts_server("ASIASTS").await;
        let dir = TempDir::new("irsa");
        let token_file = dir.write("token", "eyJhbGciOiJSUzI1NiJ9.payload.signature\n");
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/kwex-writer"),
            ("AWS_ROLE_SESSION_NAME", "kwex-session"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_STS_REGIONAL_ENDPOINTS", "regional"),
            ("AWS_ENDPOINT_URL_STS", &sts.base),
        ]));
        let creds = provider.credentials().await.unwrap();
        assert_eq!(creds.access_key_id, "ASIASTS");
        assert_eq!(creds.secret_access_key, "sts-secret-EXAMPLE");
        assert_eq!(
            creds.session_token.as_deref(),
            Some("FwoGZXIvYXdzEXAMPLE/token+with&entity")
        );
        let expires_at = creds.expires_at.unwrap();
        assert!(
            expires_at > Utc::now() + TimeDelta::minutes(55),
            "{expires_at}"
        );

        let requests = sts.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(
            request.header("content-type"),
            Some("application/x-www-form-urlencoded; charset=utf-8")
        );
        let form: HashMap<String, String> = request
            .body
            .split('&')
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap();
                let v = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap();
                (k.to_owned(), v.into_owned())
            })
            .collect();
        assert_eq!(form["Action"], "AssumeRoleWithWebIdentity");
        assert_eq!(form["Version"], "2011-06-15");
        assert_eq!(
            form["RoleArn"],
            "arn:aws:iam::123456789012:role/kwex-writer"
        );
        assert_eq!(form["RoleSessionName"], "kwex-session");
        assert_eq!(
            form["WebIdentityToken"],
            "eyJhbGciOiJSUzI1NiJ9.payload.signature"
        );
        assert!(
            !request.target.contains("WebIdentityToken"),
            "the token must not be in the URL"
        );
    }

    #[tokio::test]
    async fn an_sts_refusal_is_reported_with_its_code_and_message() {
        let sts = Server::start(|_| {
            (
                400,
                r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidIdentityToken</Code>
    <Message>No OpenIDConnect provider found in your account for https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE</Message>
  </Error>
  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
</ErrorResponse>"#
                    .to_owned(),
            )
        })
        .await;
        let dir = TempDir::new("irsa-refused");
        let token_file = dir.write("token", "a-token");
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.to_str().unwrap()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/kwex-writer"),
            ("AWS_ENDPOINT_URL_STS", &sts.base),
        ]));
        let err = provider.credentials().await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("InvalidIdentityToken"), "{text}");
        assert!(text.contains("No OpenIDConnect provider found"), "{text}");
        assert!(
            text.contains("arn:aws:iam::123456789012:role/kwex-writer"),
            "{text}"
        );
        assert!(
            text.contains("environment variables: AWS_ACCESS_KEY_ID is not set"),
            "{text}"
        );
        assert!(!text.contains("a-token"), "{text}");
    }

    #[tokio::test]
    async fn web_identity_without_a_role_arn_is_an_error() {
        let provider = CredentialsProvider::from_env(env(&[(
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "/nonexistent/token",
        )]));
        let err = provider.credentials().await.unwrap_err();
        assert!(err.to_string().contains("AWS_ROLE_ARN is not"), "{err}");
    }

    #[tokio::test]
    async fn an_unreadable_web_identity_token_file_is_reported_with_its_path() {
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/kwex/token"),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/kwex-writer"),
        ]));
        let err = provider.credentials().await.unwrap_err();
        assert!(matches!(
            err,
            CredentialsError::SourceFailed {
                error: SourceError::ReadWebIdentityToken { .. },
                ..
            }
        ));
        assert!(err.to_string().contains("/nonexistent/kwex/token"), "{err}");
    }

    #[test]
    fn sts_endpoint_is_regional_unless_overridden_or_legacy() {
        let endpoint = |vars: &[(&str, &str)]| sts_endpoint(&env(vars)).unwrap().to_string();
        assert_eq!(
            endpoint(&[("AWS_REGION", "eu-west-1")]),
            "https://sts.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            endpoint(&[("AWS_DEFAULT_REGION", "cn-north-1")]),
            "https://sts.cn-north-1.amazonaws.com.cn/"
        );
        assert_eq!(endpoint(&[]), "https://sts.amazonaws.com/");
        assert_eq!(
            endpoint(&[
                ("AWS_REGION", "us-east-1"),
                ("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
            ]),
            "https://sts.amazonaws.com/"
        );
        assert_eq!(
            endpoint(&[
                ("AWS_REGION", "ap-east-1"),
                ("AWS_STS_REGIONAL_ENDPOINTS", "legacy")
            ]),
            "https://sts.ap-east-1.amazonaws.com/"
        );
        assert_eq!(
            endpoint(&[
                ("AWS_REGION", "eu-west-1"),
                ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566")
            ]),
            "http://127.0.0.1:4566/"
        );
        assert!(sts_endpoint(&env(&[("AWS_ENDPOINT_URL_STS", "not a url")])).is_err());
    }

    #[tokio::test]
    async fn container_credentials_are_fetched_with_the_token_from_the_token_file() {
        let container = container_server("ASIACONTAINER").await;
        let dir = TempDir::new("pod-identity");
        let token_file = dir.write("eks-pod-identity-token", "pod-identity-token\n");
        let uri = format!("{}/v1/credentials", container.base);
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "ignored-because-the-file-wins",
            ),
        ]));
        let creds = provider.credentials().await.unwrap();
        assert_eq!(creds.access_key_id, "ASIACONTAINER");
        assert_eq!(creds.secret_access_key, "container-secret-EXAMPLE");
        assert_eq!(
            creds.session_token.as_deref(),
            Some("container-token-EXAMPLE")
        );
        assert!(creds.expires_at.is_some());
        let requests = container.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "GET");
        assert_eq!(requests[0].target, "/v1/credentials");
        assert_eq!(
            requests[0].header("authorization"),
            Some("pod-identity-token")
        );
    }

    #[tokio::test]
    async fn container_credentials_use_the_token_variable_when_there_is_no_file() {
        let container = container_server("ASIACONTAINER").await;
        let uri = format!("{}/creds", container.base);
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "Basic abcd"),
        ]));
        provider.credentials().await.unwrap();
        assert_eq!(
            container.requests()[0].header("authorization"),
            Some("Basic abcd")
        );
    }

    #[tokio::test]
    async fn an_error_from_the_container_endpoint_is_reported_with_its_message() {
        let container = Server::start(|_| {
            (
                400,
                r#"{"code":"InvalidTokenException","message":"Service account token cannot be empty"}"#.to_owned(),
            )
        })
        .await;
        let uri = format!("{}/v1/credentials", container.base);
        let provider =
            CredentialsProvider::from_env(env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)]));
        let err = provider.credentials().await.unwrap_err();
        assert!(matches!(
            err,
            CredentialsError::SourceFailed {
                from: Source::Container,
                error: SourceError::ContainerRefused { status: 400, .. },
                ..
            }
        ));
        assert!(
            err.to_string()
                .contains("Service account token cannot be empty"),
            "{err}"
        );
    }

    #[test]
    fn the_relative_container_uri_points_at_the_ecs_agent() {
        let url = container_url(&env(&[
            (
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/abcd-1234",
            ),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://127.0.0.1:1/ignored",
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://169.254.170.2/v2/credentials/abcd-1234"
        );
    }

    #[test]
    fn a_full_container_uri_over_plain_http_must_stay_on_the_host_or_the_agent() {
        let url = |uri: &str| container_url(&env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri)]));
        assert!(
            url("http://169.254.170.23/v1/credentials")
                .unwrap()
                .is_some()
        );
        assert!(
            url("http://[fd00:ec2::23]/v1/credentials")
                .unwrap()
                .is_some()
        );
        assert!(url("http://localhost:8080/creds").unwrap().is_some());
        assert!(url("http://127.0.0.2:8080/creds").unwrap().is_some());
        assert!(url("https://creds.example.com/creds").unwrap().is_some());
        assert!(matches!(
            url("http://creds.example.com/creds"),
            Err(SourceError::ContainerUri { .. })
        ));
        assert!(matches!(
            url("http://10.0.0.1/creds"),
            Err(SourceError::ContainerUri { .. })
        ));
        assert!(container_url(&env(&[])).unwrap().is_none());
    }

    #[tokio::test]
    async fn profile_keys_come_from_the_credentials_file() {
        let home = TempDir::new("profile-default");
        home.write(
            ".aws/credentials",
            "# keys\n[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n\n[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = other-secret\n",
        );
        let provider = CredentialsProvider::from_env(env(&[]).with_home(home.path()));
        let creds = provider.credentials().await.unwrap();
        assert_eq!(
            creds,
            Credentials::new("AKIDPROFILE", "profile-secret", None, None)
        );
    }

    #[tokio::test]
    async fn a_named_profile_is_read_from_config_under_the_profile_prefix() {
        let home = TempDir::new("profile-config");
        let config = home.write(
            "elsewhere/config",
            "[default]\nregion = eu-west-1\n\n[prod]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = wrong\n\n[profile prod]\naws_access_key_id = AKIDPROD\naws_secret_access_key = prod-secret\naws_session_token = prod-token\n",
        );
        let provider = CredentialsProvider::from_env(
            env(&[
                ("AWS_PROFILE", "prod"),
                ("AWS_CONFIG_FILE", config.to_str().unwrap()),
            ])
            .with_home(home.path()),
        );
        let creds = provider.credentials().await.unwrap();
        assert_eq!(
            creds,
            Credentials::new(
                "AKIDPROD",
                "prod-secret",
                Some("prod-token".to_owned()),
                None
            )
        );
    }

    #[tokio::test]
    async fn the_credentials_file_wins_over_the_config_file_for_the_same_profile() {
        let home = TempDir::new("profile-both");
        home.write(
            ".aws/config",
            "[profile prod]\naws_access_key_id = AKIDCONFIG\naws_secret_access_key = config-secret\n",
        );
        let credentials = home.write(
            "creds",
            "[prod]\naws_access_key_id = AKIDCREDENTIALS\naws_secret_access_key = credentials-secret\n",
        );
        let provider = CredentialsProvider::from_env(
            env(&[
                ("AWS_PROFILE", "prod"),
                ("AWS_SHARED_CREDENTIALS_FILE", credentials.to_str().unwrap()),
            ])
            .with_home(home.path()),
        );
        let creds = provider.credentials().await.unwrap();
        assert_eq!(creds.access_key_id, "AKIDCREDENTIALS");
        assert_eq!(creds.secret_access_key, "credentials-secret");
    }

    #[tokio::test]
    async fn a_missing_explicit_profile_is_an_error_but_a_missing_default_is_skipped() {
        let home = TempDir::new("profile-missing");
        home.write(
            ".aws/credentials",
            "[other]\naws_access_key_id = A\naws_secret_access_key = B\n",
        );
        let explicit =
            CredentialsProvider::from_env(env(&[("AWS_PROFILE", "prod")]).with_home(home.path()));
        let err = explicit.credentials().await.unwrap_err();
        assert!(matches!(
            err,
            CredentialsError::SourceFailed {
                from: Source::Profile,
                error: SourceError::Profile { .. },
                ..
            }
        ));
        assert!(
            err.to_string().contains("profile `prod`: not found"),
            "{err}"
        );

        let default = CredentialsProvider::from_env(env(&[]).with_home(home.path()));
        let err = default.credentials().await.unwrap_err();
        assert!(matches!(err, CredentialsError::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("profile `default`: not found"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_role_arn_profile_is_reported_as_unsupported() {
        let home = TempDir::new("profile-role");
        home.write(
            ".aws/config",
            "[profile assume]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = default\n",
        );
        let provider =
            CredentialsProvider::from_env(env(&[("AWS_PROFILE", "assume")]).with_home(home.path()));
        let err = provider.credentials().await.unwrap_err();
        assert!(
            err.to_string()
                .contains("uses role_arn, which kwex does not support"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn imds_v2_fetches_a_session_token_then_the_role_then_its_credentials() {
        let imds = imds_server("ASIAIMDS").await;
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_EC2_METADATA_DISABLED", "false"),
            (
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                &format!("{}/", imds.base),
            ),
        ]));
        let creds = provider.credentials().await.unwrap();
        assert_eq!(creds.access_key_id, "ASIAIMDS");
        assert_eq!(creds.secret_access_key, "imds-secret-EXAMPLE");
        assert_eq!(creds.session_token.as_deref(), Some("imds-token-EXAMPLE"));
        let requests = imds.requests();
        let calls: Vec<(&str, &str)> = requests
            .iter()
            .map(|r| (r.method.as_str(), r.target.as_str()))
            .collect();
        assert_eq!(
            calls,
            [
                ("PUT", "/latest/api/token"),
                ("GET", "/latest/meta-data/iam/security-credentials/"),
                (
                    "GET",
                    "/latest/meta-data/iam/security-credentials/kwex-node-role"
                ),
            ]
        );
        assert_eq!(
            requests[0].header("x-aws-ec2-metadata-token-ttl-seconds"),
            Some("21600")
        );
    }

    #[tokio::test]
    async fn an_instance_without_a_role_is_skipped_with_a_reason() {
        let imds = Server::start(|req| match req.method.as_str() {
            "PUT" => (200, "imds-session-token".to_owned()),
            _ => (404, String::new()),
        })
        .await;
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.base),
        ]));
        let err = provider.credentials().await.unwrap_err();
        assert!(matches!(err, CredentialsError::NotFound { .. }), "{err}");
        assert!(
            err.to_string().contains("the instance has no IAM role"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn an_unreachable_imds_is_skipped_quickly() {
        // A port that was just free: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint),
        ]));
        let started = std::time::Instant::now();
        let err = provider.credentials().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("is unreachable"), "{err}");
    }

    #[tokio::test]
    async fn imds_is_not_contacted_when_disabled() {
        let imds = imds_server("ASIAIMDS").await;
        let provider = CredentialsProvider::from_env(env(&[
            ("AWS_EC2_METADATA_DISABLED", "TRUE"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.base),
        ]));
        let err = provider.credentials().await.unwrap_err();
        assert!(
            err.to_string()
                .contains("AWS_EC2_METADATA_DISABLED is true"),
            "{err}"
        );
        assert!(imds.requests().is_empty());
    }

    #[tokio::test]
    async fn the_chain_prefers_environment_then_web_identity_then_container_then_profile_then_imds()
    {
        let sts = sts_server("ASIASTS").await;
        let container = container_server("ASIACONTAINER").await;
        let imds = imds_server("ASIAIMDS").await;
        let dir = TempDir::new("chain");
        let token_file = dir.write("token", "web-identity-token");
        dir.write(
            "home/.aws/credentials",
            "[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret\n",
        );
        let container_uri = format!("{}/v1/credentials", container.base);
        let token_path = token_file.to_str().unwrap().to_owned();

        let environment = [
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ];
        let web_identity = [
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_path.as_str()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/kwex-writer"),
            ("AWS_ENDPOINT_URL_STS", sts.base.as_str()),
        ];
        let container_vars = [("AWS_CONTAINER_CREDENTIALS_FULL_URI", container_uri.as_str())];
        let imds_vars = [
            ("AWS_EC2_METADATA_DISABLED", "false"),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.base.as_str()),
        ];

        let resolve = |groups: Vec<&[(&str, &str)]>, with_home: bool| {
            let vars: Vec<(&str, &str)> = groups.into_iter().flatten().copied().collect();
            let mut env = env(&vars);
            if with_home {
                env = env.with_home(dir.path().join("home"));
            }
            async move {
                CredentialsProvider::from_env(env)
                    .credentials()
                    .await
                    .unwrap()
                    .access_key_id
            }
        };
        let all: Vec<&[(&str, &str)]> =
            vec![&environment, &web_identity, &container_vars, &imds_vars];

        assert_eq!(resolve(all.clone(), true).await, "AKIDENV");
        assert_eq!(
            sts.requests().len() + container.requests().len() + imds.requests().len(),
            0
        );

        assert_eq!(resolve(all[1..].to_vec(), true).await, "ASIASTS");
        assert_eq!(container.requests().len() + imds.requests().len(), 0);

        assert_eq!(resolve(all[2..].to_vec(), true).await, "ASIACONTAINER");
        assert_eq!(imds.requests().len(), 0);

        assert_eq!(resolve(all[3..].to_vec(), true).await, "AKIDPROFILE");
        assert_eq!(imds.requests().len(), 0);

        assert_eq!(resolve(all[3..].to_vec(), false).await, "ASIAIMDS");
        assert_eq!(sts.requests().len(), 1);
        assert_eq!(container.requests().len(), 1);
    }

    #[tokio::test]
    async fn credentials_are_cached_until_five_minutes_before_expiry() {
        let lasting = container_server("ASIALASTING").await;
        let uri = format!("{}/creds", lasting.base);
        let provider =
            CredentialsProvider::from_env(env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)]));
        for _ in 0..3 {
            assert_eq!(
                provider.credentials().await.unwrap().access_key_id,
                "ASIALASTING"
            );
        }
        assert_eq!(lasting.requests().len(), 1, "six hours left: fetched once");

        // Two minutes left is inside the five-minute margin: every call refreshes.
        let expiring = Server::start(|_| {
            (
                200,
                container_answer("ASIAEXPIRING", Utc::now() + TimeDelta::minutes(2)),
            )
        })
        .await;
        let uri = format!("{}/creds", expiring.base);
        let provider =
            CredentialsProvider::from_env(env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)]));
        for _ in 0..3 {
            assert_eq!(
                provider.credentials().await.unwrap().access_key_id,
                "ASIAEXPIRING"
            );
        }
        assert_eq!(expiring.requests().len(), 3);
    }

    #[tokio::test]
    async fn static_keys_are_resolved_once() {
        let home = TempDir::new("profile-cache");
        let file = home.write(
            ".aws/credentials",
            "[default]\naws_access_key_id = AKIDFIRST\naws_secret_access_key = s\n",
        );
        let provider = CredentialsProvider::from_env(env(&[]).with_home(home.path()));
        assert_eq!(
            provider.credentials().await.unwrap().access_key_id,
            "AKIDFIRST"
        );
        std::fs::write(
            &file,
            "[default]\naws_access_key_id = AKIDSECOND\naws_secret_access_key = s\n",
        )
        .unwrap();
        assert_eq!(
            provider.credentials().await.unwrap().access_key_id,
            "AKIDFIRST"
        );
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_credentials_that_have_not_expired() {
        let calls = Arc::new(AtomicUsize::new(0));
        let server = Server::start({
            let calls = Arc::clone(&calls);
            move |_| {
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    (
                        200,
                        container_answer("ASIAEXPIRING", Utc::now() + TimeDelta::minutes(2)),
                    )
                } else {
                    (500, r#"{"message":"agent restarting"}"#.to_owned())
                }
            }
        })
        .await;
        let uri = format!("{}/creds", server.base);
        let provider =
            CredentialsProvider::from_env(env(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &uri)]));
        assert_eq!(
            provider.credentials().await.unwrap().access_key_id,
            "ASIAEXPIRING"
        );
        assert_eq!(
            provider.credentials().await.unwrap().access_key_id,
            "ASIAEXPIRING"
        );
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the second call tried a refresh"
        );
    }

    #[tokio::test]
    async fn when_nothing_is_configured_the_error_lists_every_source_and_what_to_do() {
        let provider = CredentialsProvider::from_env(env(&[]));
        let err = provider.credentials().await.unwrap_err();
        let CredentialsError::NotFound { attempts } = &err else {
            panic!("{err}");
        };
        let sources: Vec<Source> = attempts.iter().map(|a| a.source).collect();
        assert_eq!(sources, Source::CHAIN);
        let text = err.to_string();
        for expected in [
            "environment variables: AWS_ACCESS_KEY_ID is not set",
            "web identity (IRSA): AWS_WEB_IDENTITY_TOKEN_FILE is not set",
            "container credentials (EKS Pod Identity / ECS): neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "shared config files: no home directory",
            "EC2 instance metadata (IMDSv2): AWS_EC2_METADATA_DISABLED is true",
            "Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run the pod with an IAM role for its service account",
        ] {
            assert!(text.contains(expected), "{expected:?} not in {text}");
        }
    }

    #[test]
    fn ini_sections_skip_comments_and_indented_sub_properties() {
        let text = "; comment\n[profile  x]\n# comment\naws_access_key_id=A\ns3 =\n  max_concurrent_requests = 20\nAWS_Secret_Access_Key = B = C\n[y]\naws_access_key_id = Y\n[profile x]\naws_session_token = T\n";
        let section = ini_section(text, &["profile x".to_owned()]).unwrap();
        assert_eq!(
            section.get("aws_access_key_id").map(String::as_str),
            Some("A")
        );
        assert_eq!(
            section.get("aws_secret_access_key").map(String::as_str),
            Some("B = C")
        );
        assert_eq!(
            section.get("aws_session_token").map(String::as_str),
            Some("T")
        );
        assert!(!section.contains_key("max_concurrent_requests"));
        assert!(ini_section(text, &["z".to_owned()]).is_none());
    }

    #[test]
    fn xml_text_is_unescaped() {
        assert_eq!(
            xml_unescape("a&amp;b&lt;c&gt;&quot;&apos;&#65;&#x42;"),
            "a&b<c>\"'AB"
        );
        assert_eq!(xml_unescape("broken & entity"), "broken & entity");
        assert_eq!(xml_text("<A> x&amp;y </A>", "A").as_deref(), Some("x&y"));
        assert_eq!(xml_text("<A>x", "A"), None);
    }

    #[test]
    fn an_sts_answer_without_credentials_is_an_error_that_shows_no_secret() {
        let err = parse_sts_credentials("<AssumeRoleWithWebIdentityResponse/>").unwrap_err();
        assert!(matches!(err, SourceError::ReadStsResponse(_)));
        let err = parse_json_credentials(
            br#"{"Code":"AssumeRoleUnauthorizedAccess","Message":"denied","SecretAccessKey":"s3cr3t"}"#,
            SourceError::ReadImdsCredentials,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("AssumeRoleUnauthorizedAccess"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}
