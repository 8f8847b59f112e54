//! Per-identity and per-thread request limits, by profile: `standard` stops a flood without
//! touching heavy normal use, `acs-cloud` throttles like the cloud service (NOTES.md),
//! `kaizala-cloud` adds the Kaizala cloud's per-connector (100/min) and per-tenant (300/min)
//! limits to the standard rules, `off` lets everything through. Each rule can be overridden in
//! confab.toml.

use std::hash::Hash;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{ConversationId, IdentityId};

/// `requests` per `seconds`, refilled evenly (GCRA), with the whole allowance as burst.
/// `requests = 0` switches the rule off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub requests: u32,
    pub seconds: u32,
}

impl Rule {
    pub const fn new(requests: u32, seconds: u32) -> Self {
        Self { requests, seconds }
    }

    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.requests)?;
        let period = Duration::from_secs(u64::from(self.seconds.max(1))) / self.requests;
        Quota::with_period(period).map(|q| q.allow_burst(burst))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    Standard,
    AcsCloud,
    KaizalaCloud,
    Off,
}

impl Profile {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "standard" => Some(Profile::Standard),
            "acs-cloud" => Some(Profile::AcsCloud),
            "kaizala-cloud" => Some(Profile::KaizalaCloud),
            "off" => Some(Profile::Off),
            _ => None,
        }
    }
}

/// The rules in force; `None` switches a rule off.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Every chat call of one identity.
    pub per_identity: Option<Rule>,
    /// Thread creations by one identity.
    pub create_thread_per_identity: Option<Rule>,
    /// Message sends, edits and deletes in one thread.
    pub message_writes_per_thread: Option<Rule>,
    /// Message listings by one identity in one thread.
    pub list_messages_per_identity_thread: Option<Rule>,
    /// Kaizala calls of one connector application (its logins and its tokens' calls).
    pub per_connector: Option<Rule>,
    /// Kaizala calls of all connector applications together (the tenant is the whole server).
    pub per_tenant: Option<Rule>,
}

impl RateLimits {
    pub fn profile(profile: Profile) -> Self {
        match profile {
            Profile::Off => RateLimits::default(),
            Profile::Standard => RateLimits {
                per_identity: Some(Rule::new(20_000, 10)),
                create_thread_per_identity: Some(Rule::new(2_000, 10)),
                message_writes_per_thread: Some(Rule::new(20_000, 10)),
                list_messages_per_identity_thread: Some(Rule::new(10_000, 10)),
                per_connector: None,
                per_tenant: None,
            },
            // The cloud's published per-10-second limits.
            Profile::AcsCloud => RateLimits {
                per_identity: Some(Rule::new(500, 10)),
                create_thread_per_identity: Some(Rule::new(10, 10)),
                message_writes_per_thread: Some(Rule::new(10, 10)),
                list_messages_per_identity_thread: Some(Rule::new(50, 10)),
                per_connector: None,
                per_tenant: None,
            },
            // The Kaizala cloud's published per-minute limits, over the standard rules.
            Profile::KaizalaCloud => RateLimits {
                per_connector: Some(Rule::new(100, 60)),
                per_tenant: Some(Rule::new(300, 60)),
                ..RateLimits::profile(Profile::Standard)
            },
        }
    }
}

impl RateLimits {
    /// These rules, with each rule `overrides` sets taking the place of this one's.
    pub fn overridden_by(&self, overrides: &RateLimits) -> RateLimits {
        RateLimits {
            per_identity: overrides.per_identity.or(self.per_identity),
            create_thread_per_identity: overrides
                .create_thread_per_identity
                .or(self.create_thread_per_identity),
            message_writes_per_thread: overrides
                .message_writes_per_thread
                .or(self.message_writes_per_thread),
            list_messages_per_identity_thread: overrides
                .list_messages_per_identity_thread
                .or(self.list_messages_per_identity_thread),
            per_connector: overrides.per_connector.or(self.per_connector),
            per_tenant: overrides.per_tenant.or(self.per_tenant),
        }
    }
}

/// What a call does, for the rules that look at more than the caller.
#[derive(Clone, Copy, Debug)]
pub enum Operation {
    CreateThread,
    WriteMessage(ConversationId),
    ListMessages(ConversationId),
    Other,
}

type Limiter<K> = Option<DefaultKeyedRateLimiter<K>>;

/// The limiters of one server.
pub struct Throttle {
    per_identity: Limiter<IdentityId>,
    create_thread: Limiter<IdentityId>,
    message_writes: Limiter<ConversationId>,
    list_messages: Limiter<(IdentityId, ConversationId)>,
    per_connector: Limiter<String>,
    per_tenant: Limiter<()>,
}

fn limiter<K: Hash + Eq + Clone>(rule: Option<Rule>) -> Limiter<K> {
    rule.and_then(Rule::quota).map(RateLimiter::keyed)
}

fn check<K: Hash + Eq + Clone>(limiter: &Limiter<K>, key: &K) -> Result<()> {
    match limiter {
        Some(limiter) => limiter
            .check_key(key)
            .map_err(|not_until| Error::RateLimited {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            }),
        None => Ok(()),
    }
}

impl Throttle {
    pub fn new(limits: &RateLimits) -> Self {
        Self {
            per_identity: limiter(limits.per_identity),
            create_thread: limiter(limits.create_thread_per_identity),
            message_writes: limiter(limits.message_writes_per_thread),
            list_messages: limiter(limits.list_messages_per_identity_thread),
            per_connector: limiter(limits.per_connector),
            per_tenant: limiter(limits.per_tenant),
        }
    }

    /// Counts one call of a connector application: against its own allowance, then the
    /// tenant's (a call refused by the first does not use up the second).
    pub fn check_connector(&self, application: &str) -> Result<()> {
        if self.per_connector.is_some() {
            check(&self.per_connector, &application.to_owned())?;
        }
        check(&self.per_tenant, &())
    }

    /// Counts one call; `RateLimited` with the time to wait when a rule is exhausted.
    pub fn check(&self, caller: &IdentityId, operation: Operation) -> Result<()> {
        check(&self.per_identity, caller)?;
        match operation {
            Operation::CreateThread => check(&self.create_thread, caller),
            Operation::WriteMessage(thread) => check(&self.message_writes, &thread),
            Operation::ListMessages(thread) => {
                check(&self.list_messages, &(caller.clone(), thread))
            }
            Operation::Other => Ok(()),
        }
    }

    /// Forgets keys whose allowance is full again, so memory stays bounded by recent callers.
    pub fn prune(&self) {
        if let Some(l) = &self.per_identity {
            l.retain_recent();
        }
        if let Some(l) = &self.create_thread {
            l.retain_recent();
        }
        if let Some(l) = &self.message_writes {
            l.retain_recent();
        }
        if let Some(l) = &self.list_messages {
            l.retain_recent();
        }
        if let Some(l) = &self.per_connector {
            l.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_allows_its_burst_then_answers_a_wait() {
        let limits = RateLimits {
            per_identity: Some(Rule::new(3, 10)),
            ..Default::default()
        };
        let throttle = Throttle::new(&limits);
        let alice = IdentityId::new_user("r");
        let bob = IdentityId::new_user("r");
        for _ in 0..3 {
            assert!(throttle.check(&alice, Operation::Other).is_ok());
        }
        match throttle.check(&alice, Operation::Other) {
            Err(Error::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(4))
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        assert!(
            throttle.check(&bob, Operation::Other).is_ok(),
            "limits are per identity"
        );
    }

    #[test]
    fn cloud_profile_limits_writes_per_thread_and_off_limits_nothing() {
        let throttle = Throttle::new(&RateLimits::profile(Profile::AcsCloud));
        let thread = ConversationId::generate();
        let users: Vec<_> = (0..11).map(|_| IdentityId::new_user("r")).collect();
        for user in &users[..10] {
            assert!(throttle
                .check(user, Operation::WriteMessage(thread))
                .is_ok());
        }
        assert!(throttle
            .check(&users[10], Operation::WriteMessage(thread))
            .is_err());
        assert!(throttle
            .check(
                &users[10],
                Operation::WriteMessage(ConversationId::generate())
            )
            .is_ok());

        let kaizala = Throttle::new(&RateLimits::profile(Profile::KaizalaCloud));
        for _ in 0..100 {
            assert!(kaizala.check_connector("app-a").is_ok());
        }
        assert!(
            kaizala.check_connector("app-a").is_err(),
            "100/min per connector"
        );
        for app in ["app-b", "app-c"] {
            for _ in 0..100 {
                assert!(kaizala.check_connector(app).is_ok());
            }
        }
        // 300 used across connectors (the refused call above did not count): the tenant is full.
        assert!(
            kaizala.check_connector("app-d").is_err(),
            "300/min per tenant"
        );

        let off = Throttle::new(&RateLimits::profile(Profile::Off));
        for _ in 0..10_000 {
            assert!(off
                .check(&users[0], Operation::WriteMessage(thread))
                .is_ok());
        }
    }
}
