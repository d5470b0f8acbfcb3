//! Leader election against the in-memory API server: one leader at a time, renewal, takeover
//! after expiry, release on shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use ollama_mcp_operator::leader::{LeaseLock, LeaseTiming};
use support::fake_api::FakeApi;

fn timing() -> LeaseTiming {
    LeaseTiming {
        lease_duration: Duration::from_secs(1),
        renew_deadline: Duration::from_millis(600),
        retry_period: Duration::from_millis(50),
    }
}

fn lock(api: &FakeApi, id: &str) -> LeaseLock {
    lock_with(api, id, timing())
}

fn lock_with(api: &FakeApi, id: &str, timing: LeaseTiming) -> LeaseLock {
    let _ = rustls::crypto::ring::default_provider().install_default();
    LeaseLock::new(
        Api::<Lease>::namespaced(api.client(), "ops"),
        "ollama-mcp-operator",
        id,
        timing,
    )
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get(
        "coordination.k8s.io/v1",
        "leases",
        "ops",
        "ollama-mcp-operator",
    )
    .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

#[tokio::test]
async fn one_leader_renews_and_a_standby_takes_over_after_expiry() {
    let api = FakeApi::new(false);
    let mut a = lock(&api, "a");
    let mut b = lock(&api, "b");
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a creates the Lease"
    );
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "b must not lead while a's Lease is fresh"
    );
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    assert_eq!(holder(&api).as_deref(), Some("a"));

    // a stops renewing (crashed); b watches the record stay unchanged for the lease duration.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if b.try_acquire_or_renew().await.unwrap() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "b never took over the expired Lease"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease = api
        .get(
            "coordination.k8s.io/v1",
            "leases",
            "ops",
            "ollama-mcp-operator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    // a comes back: the Lease is b's now.
    assert!(!a.try_acquire_or_renew().await.unwrap());
}

#[tokio::test]
async fn a_renewing_leader_keeps_the_lease() {
    let api = FakeApi::new(false);
    // A long lease against a 50 ms renewal: a loaded machine cannot make this flaky.
    let slow = LeaseTiming {
        lease_duration: Duration::from_secs(5),
        renew_deadline: Duration::from_secs(4),
        retry_period: Duration::from_millis(50),
    };
    let mut a = lock_with(&api, "a", slow);
    let mut b = lock_with(&api, "b", slow);
    a.acquire().await;
    let renewing = tokio::spawn(async move {
        a.keep_renewing().await;
    });
    // For a while b keeps trying and never wins.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        assert!(
            !b.try_acquire_or_renew().await.unwrap(),
            "b took a Lease that was being renewed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !renewing.is_finished(),
        "the leader gave up a Lease nobody contested"
    );
    renewing.abort();
}

#[tokio::test]
async fn release_hands_over_at_once_and_racing_candidates_do_not_both_win() {
    let api = FakeApi::new(false);
    let mut a = lock(&api, "a");
    a.acquire().await;
    a.release().await.unwrap();
    assert_eq!(holder(&api), None);
    // Two candidates race for the free Lease: the resourceVersion guard lets exactly one win.
    let mut b = lock(&api, "b");
    let mut c = lock(&api, "c");
    let (rb, rc) = tokio::join!(b.try_acquire_or_renew(), c.try_acquire_or_renew());
    let winners = [rb.unwrap(), rc.unwrap()].iter().filter(|w| **w).count();
    assert_eq!(winners, 1, "exactly one candidate leads");
    let h = holder(&api).unwrap();
    assert!(h == "b" || h == "c");
}
