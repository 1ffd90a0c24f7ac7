//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.
//!
//! With `--leader-elect`, replicas compete for one Lease; only its holder
//! exports, the others stand by and take over within the lease duration when
//! the holder stops renewing. Expiry is judged, as in client-go, by when this
//! replica last *saw the Lease change* on its own clock — never by comparing
//! another node's `renewTime` with the local clock, so clock skew between
//! nodes cannot make two leaders.
//!
//! A leader that cannot renew within the renew deadline stops exporting (the
//! process exits non-zero and Kubernetes restarts it as a standby). Exports
//! of two replicas overlapping for a moment would be harmless anyway:
//! Document ids make the second copy a 409.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use prometheus::{IntGauge, Registry};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::telemetry::metrics::{self, RegisterError};

/// `--leader-elect-*` flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// This replica's identity (the pod name in a cluster).
    pub identity: String,
    /// How long a Lease is valid after its last renewal (client-go default 15 s).
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long gives up (client-go default 10 s).
    pub renew_deadline: Duration,
    /// Pause between attempts to acquire or renew (client-go default 2 s).
    pub retry_period: Duration,
}

/// Leadership could not be held.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The renew deadline passed without a successful renewal.
    #[error(
        "lost the leader Lease {namespace}/{name}: not renewed within {deadline:?} (last error: {last_error}); \
         exiting so that another replica takes over"
    )]
    Lost {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The renew deadline.
        deadline: Duration,
        /// Why the last renewal failed.
        last_error: String,
    },
    /// RBAC does not allow the Lease operations.
    #[error(
        "the API server denied access to the Lease {namespace}/{name} (403: {message}); with --leader-elect kwex \
         needs get, create and update on \"leases\" (API group coordination.k8s.io) in that namespace"
    )]
    Forbidden {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The server's message.
        message: String,
    },
}

/// Campaigns for and holds the Lease.
pub struct Elector {
    api: Api<Lease>,
    settings: Settings,
    leader: IntGauge,
    /// The Lease as last seen, and when (local clock) it last changed.
    observed: Option<(LeaseSpec, Instant)>,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Outcome of one attempt.
enum Attempt {
    Leader,
    Follower { holder: String },
}

impl Elector {
    /// An elector for the Lease in `settings`; registers `kwex_source_kube_leader`.
    pub fn new(
        client: kube::Client,
        settings: Settings,
        registry: &Registry,
    ) -> Result<Self, RegisterError> {
        let leader = metrics::gauge(
            registry,
            "kwex_source_kube_leader",
            "1 while this replica holds the leader Lease.",
        )?;
        Ok(Self {
            api: Api::namespaced(client, &settings.namespace),
            settings,
            leader,
            observed: None,
        })
    }

    /// Waits until this replica holds the Lease. Returns false on shutdown.
    pub async fn acquire(&mut self, shutdown: &CancellationToken) -> Result<bool, Error> {
        let mut announced = None::<String>;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leader) => {
                    self.leader.set(1);
                    tracing::info!(lease = %self.settings.name, identity = %self.settings.identity, "Became the leader; exporting.");
                    return Ok(true);
                }
                Ok(Attempt::Follower { holder }) => {
                    if announced.as_deref() != Some(holder.as_str()) {
                        tracing::info!(lease = %self.settings.name, %holder, "Another replica is the leader; standing by.");
                        announced = Some(holder);
                    }
                }
                Err(AttemptError::Forbidden(message)) => return Err(self.forbidden(message)),
                Err(AttemptError::Other(e)) => {
                    tracing::warn!(lease = %self.settings.name, error = %e, "Cannot read or take the leader Lease; retrying.");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(false),
                () = tokio::time::sleep(self.settings.retry_period) => {}
            }
        }
    }

    /// Renews the Lease until shutdown (then releases it) or until it is lost.
    pub async fn hold(&mut self, shutdown: &CancellationToken) -> Result<(), Error> {
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.release().await;
                    return Ok(());
                }
                () = tokio::time::sleep(self.settings.retry_period) => {}
            }
            let last_error = match self.try_acquire_or_renew().await {
                Ok(Attempt::Leader) => {
                    last_renewal = Instant::now();
                    continue;
                }
                Ok(Attempt::Follower { holder }) => format!("the Lease is now held by {holder}"),
                Err(AttemptError::Forbidden(message)) => return Err(self.forbidden(message)),
                Err(AttemptError::Other(e)) => e,
            };
            if last_renewal.elapsed() >= self.settings.renew_deadline
                || last_error.starts_with("the Lease is now held")
            {
                self.leader.set(0);
                return Err(Error::Lost {
                    namespace: self.settings.namespace.clone(),
                    name: self.settings.name.clone(),
                    deadline: self.settings.renew_deadline,
                    last_error,
                });
            }
            tracing::warn!(lease = %self.settings.name, error = %last_error, "Cannot renew the leader Lease; retrying.");
        }
    }

    fn forbidden(&self, message: String) -> Error {
        Error::Forbidden {
            namespace: self.settings.namespace.clone(),
            name: self.settings.name.clone(),
            message,
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, AttemptError> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let me = self.settings.identity.clone();
        let duration_secs = i32::try_from(self.settings.lease_duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let current = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(AttemptError::from)?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.settings.name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            self.api
                .create(&PostParams::default(), &lease)
                .await
                .map_err(AttemptError::from)?;
            return Ok(Attempt::Leader);
        };
        let spec = lease.spec.clone().unwrap_or_default();
        // Note when the record last changed, on our own clock.
        let changed = self.observed.as_ref().is_none_or(|(seen, _)| *seen != spec);
        if changed {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_by_other = holder.as_deref().is_some_and(|h| h != me);
        if held_by_other {
            let lease_for = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(15).max(1)).unwrap_or(15),
            );
            let seen_at = self
                .observed
                .as_ref()
                .map_or_else(Instant::now, |(_, at)| *at);
            if seen_at.elapsed() < lease_for {
                return Ok(Attempt::Follower {
                    holder: holder.unwrap_or_default(),
                });
            }
        }
        let mut new_spec = spec.clone();
        if holder.as_deref() != Some(me.as_str()) {
            new_spec.acquire_time = Some(now.clone());
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        new_spec.holder_identity = Some(me);
        new_spec.lease_duration_seconds = Some(duration_secs);
        new_spec.renew_time = Some(now);
        lease.spec = Some(new_spec.clone());
        // `replace` carries the resourceVersion we read: if another replica
        // wrote in between, the server answers 409 and nobody gets two leaders.
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map_err(AttemptError::from)?;
        self.observed = Some((new_spec, Instant::now()));
        Ok(Attempt::Leader)
    }

    /// Gives the Lease up at shutdown so that a standby takes over at once.
    async fn release(&mut self) {
        self.leader.set(0);
        let Ok(Some(mut lease)) = self.api.get_opt(&self.settings.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(k8s_openapi::jiff::Timestamp::now()));
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = %self.settings.name, "Released the leader Lease."),
            Err(e) => {
                tracing::warn!(lease = %self.settings.name, error = %e, "Cannot release the leader Lease; it will expire.")
            }
        }
    }
}

enum AttemptError {
    Forbidden(String),
    Other(String),
}

impl From<kube::Error> for AttemptError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) if status.code == 403 => {
                AttemptError::Forbidden(status.message)
            }
            kube::Error::Api(status) if status.code == 409 => {
                AttemptError::Other("another replica updated the Lease at the same time".into())
            }
            other => AttemptError::Other(other.to_string()),
        }
    }
}
