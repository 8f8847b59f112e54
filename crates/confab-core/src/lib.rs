//! confab's core: the one model under both faces, the rules of who may do what, and the ports
//! through which the core reaches storage and time. No I/O but through those ports.

pub mod actions;
pub mod chat;
pub mod connector;
pub mod error;
pub mod event_subscriptions;
pub mod groups;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod media;
pub mod model;
pub mod ports;
pub mod ratelimit;
mod read_cache;
pub mod stream;
pub mod subgroups;
pub mod subscribers;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;

use connector::ConnectorConfig;
pub use error::{Error, Result};
use ids::IdentityId;
pub use limits::Limits;
use ports::connectors::NoPinSender;
use ports::{Bus, Clock, LocalBus, PinSender, Store};
use ratelimit::{RateLimits, Throttle};
use read_cache::ReadCache;
use stream::EventRetention;
use tokens::TokenIssuer;

/// A map that a request looks up (tokens, generations, memberships): foldhash, a few times
/// faster than the default SipHash on the long keys these are, and seeded per process.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Settings the core needs from the server.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This server's resource id, the middle of `8:acs:<resource id>_<uuid>`.
    pub resource_id: String,
    /// The secret bearer tokens are signed with.
    pub token_secret: Vec<u8>,
    pub limits: Limits,
}

/// The core: every face calls these methods; they reach storage only through the ports.
pub struct Core {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tokens: TokenIssuer,
    resource_id: String,
    limits: Limits,
    throttle: Throttle,
    /// Token generation per identity (None: deleted), so a token check costs no query.
    generations: ReadCache<IdentityId, Option<u32>>,
    /// Whether a connector application exists, so that a connector token check costs no query.
    applications: ReadCache<String, bool>,
    connectors: ConnectorConfig,
    pin_sender: Arc<dyn PinSender>,
    /// The live feed of committed events (typing and control events are published here too).
    bus: Arc<dyn Bus>,
    event_retention: EventRetention,
    /// Where uploaded media bytes go (by default a map in memory).
    blobs: Arc<dyn ports::Blobs>,
    media_limits: media::MediaLimits,
    /// The outbound client webhooks are validated and delivered with (`None`: webhooks off).
    webhook_client: Option<Arc<dyn ports::WebhookClient>>,
    webhook_config: webhooks::WebhookConfig,
}

impl Core {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: CoreConfig) -> Self {
        Self {
            store,
            clock,
            tokens: TokenIssuer::new(&config.token_secret),
            resource_id: config.resource_id,
            limits: config.limits,
            throttle: Throttle::new(&RateLimits::default()),
            generations: ReadCache::default(),
            applications: ReadCache::default(),
            connectors: ConnectorConfig::default(),
            pin_sender: Arc::new(NoPinSender),
            bus: Arc::new(LocalBus::default()),
            event_retention: EventRetention::default(),
            blobs: Arc::new(ports::MemoryBlobs::default()),
            media_limits: media::MediaLimits::default(),
            webhook_client: None,
            webhook_config: webhooks::WebhookConfig::default(),
        }
    }

    /// Turns webhooks on: registration validates callback URLs with `client`, and
    /// [`webhooks::run_delivery_worker`] delivers with it.
    pub fn with_webhooks(
        mut self,
        client: Arc<dyn ports::WebhookClient>,
        config: webhooks::WebhookConfig,
    ) -> Self {
        self.webhook_client = Some(client);
        self.webhook_config = config;
        self
    }

    /// The store is shared with other nodes, whose revocations and deletions this node does not
    /// hear of: remembered token generations and connector applications are read again once
    /// `staleness` old, so that a token revoked through another node stops working here within
    /// it.
    pub fn with_shared_store(mut self, staleness: std::time::Duration) -> Self {
        self.generations = ReadCache::with_max_age(staleness);
        self.applications = ReadCache::with_max_age(staleness);
        self
    }

    /// Replaces the bus (by default an in-process one that no store publishes to). The store
    /// must publish its commits to the same bus.
    pub fn with_bus(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = bus;
        self
    }

    /// Replaces how long events are kept (by default 7 days).
    pub fn with_event_retention(mut self, retention: EventRetention) -> Self {
        self.event_retention = retention;
        self
    }

    /// Replaces the blob store of uploaded media (by default a map in memory).
    pub fn with_blobs(mut self, blobs: Arc<dyn ports::Blobs>) -> Self {
        self.blobs = blobs;
        self
    }

    /// Replaces the media upload limits.
    pub fn with_media_limits(mut self, limits: media::MediaLimits) -> Self {
        self.media_limits = limits;
        self
    }

    /// Replaces the connector (Kaizala login) settings.
    pub fn with_connectors(mut self, config: ConnectorConfig) -> Self {
        self.connectors = config;
        self
    }

    /// Replaces the PIN sender (by default PINs are not delivered, only logged as sent).
    pub fn with_pin_sender(mut self, sender: Arc<dyn PinSender>) -> Self {
        self.pin_sender = sender;
        self
    }

    /// Replaces the rate limits (none by default).
    pub fn with_rate_limits(mut self, limits: &RateLimits) -> Self {
        self.throttle = Throttle::new(limits);
        self
    }

    /// Drops rate-limit state of callers that have been quiet; run periodically.
    pub fn prune_rate_limits(&self) {
        self.throttle.prune();
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }
}
