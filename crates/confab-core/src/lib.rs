//! confab's core: the one model under both faces, the rules of who may do what, and the ports
//! through which the core reaches storage and time. No I/O but through those ports.

pub mod chat;
pub mod connector;
pub mod error;
pub mod groups;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod model;
pub mod ports;
pub mod ratelimit;
pub mod tokens;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use connector::ConnectorConfig;
pub use error::{Error, Result};
use ids::IdentityId;
pub use limits::Limits;
use ports::connectors::NoPinSender;
use ports::{Clock, PinSender, Store};
use ratelimit::{RateLimits, Throttle};
use tokens::TokenIssuer;

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
    generations: RwLock<HashMap<IdentityId, Option<u32>>>,
    /// Whether a connector application exists, so that a connector token check costs no query.
    applications: RwLock<HashMap<String, bool>>,
    connectors: ConnectorConfig,
    pin_sender: Arc<dyn PinSender>,
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
            generations: RwLock::new(HashMap::new()),
            applications: RwLock::new(HashMap::new()),
            connectors: ConnectorConfig::default(),
            pin_sender: Arc::new(NoPinSender),
        }
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
