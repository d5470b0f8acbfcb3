//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas can run
//! for availability while only one reconciles.
//!
//! As client-go does it: the holder renews `renewTime` every `retry_period`; a candidate takes
//! the Lease over when the record has not changed for `lease_duration` *by its own clock* (so
//! clock skew between nodes does not matter). Every write is a replace guarded by the
//! resourceVersion that was read, so two candidates cannot both win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

/// Timing of the election (client-go's defaults).
#[derive(Debug, Clone, Copy)]
pub struct LeaseTiming {
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// Pause between attempts.
    pub retry_period: Duration,
}

impl Default for LeaseTiming {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("reading Lease `{name}`: {source}")]
    Read { name: String, source: kube::Error },
    #[error("writing Lease `{name}`: {source}")]
    Write { name: String, source: kube::Error },
}

/// What identifies one version of the Lease record: holder, renewTime, resourceVersion.
type Record = (Option<String>, Option<Timestamp>, Option<String>);

/// One candidate for one Lease.
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: LeaseTiming,
    /// The record last seen (holder, renewTime, resourceVersion) and when it was first seen.
    observed: Option<(Record, Instant)>,
}

impl LeaseLock {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: LeaseTiming) -> Self {
        Self {
            api,
            name: name.into(),
            identity: identity.into(),
            timing,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// One attempt: acquire a free or expired Lease, or renew our own. `Ok(true)` while leading.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let read = |source| LeaderError::Read {
            name: self.name.clone(),
            source,
        };
        let now = Timestamp::now();
        let Some(lease) = self.api.get_opt(&self.name).await.map_err(read)? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                // Another candidate created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(source) => Err(LeaderError::Write {
                    name: self.name.clone(),
                    source,
                }),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (
            holder.clone(),
            spec.renew_time.as_ref().map(|t| t.0),
            lease.metadata.resource_version.clone(),
        );
        let first_seen = match &self.observed {
            Some((r, at)) if *r == record => *at,
            _ => Instant::now(),
        };
        self.observed = Some((record, first_seen));

        let ours = holder.as_deref() == Some(self.identity.as_str());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.timing.lease_duration, Duration::from_secs);
        let expired = holder.is_none() || first_seen.elapsed() >= duration;
        if !ours && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0);
        let (acquired, transitions) = if ours {
            (spec.acquire_time.map_or(now, |t| t.0), transitions)
        } else {
            (now, transitions.saturating_add(1))
        };
        let mut next = lease;
        next.spec = Some(self.spec(acquired, now, transitions));
        // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                self.observed = Some((
                    (
                        Some(self.identity.clone()),
                        Some(now),
                        written.metadata.resource_version.clone(),
                    ),
                    Instant::now(),
                ));
                if !ours {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired the leader Lease");
                }
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(source) => Err(LeaderError::Write {
                name: self.name.clone(),
                source,
            }),
        }
    }

    /// Gives the Lease up (on shutdown) so that a standby takes over at once.
    pub async fn release(&mut self) -> Result<(), LeaderError> {
        let read = |source| LeaderError::Read {
            name: self.name.clone(),
            source,
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await.map_err(read)? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(source) => Err(LeaderError::Write {
                name: self.name.clone(),
                source,
            }),
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(15),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    /// Waits until this candidate leads.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews until a renewal has failed for longer than the renew deadline; returns then
    /// (leadership is lost and the caller must stop reconciling).
    pub async fn keep_renewing(&mut self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "another replica holds the leader Lease now");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the leader Lease failed"),
            }
            if last_ok.elapsed() > self.timing.renew_deadline {
                tracing::error!(lease = %self.name, "could not renew the leader Lease in time");
                return;
            }
        }
    }
}
