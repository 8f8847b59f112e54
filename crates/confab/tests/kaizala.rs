//! Integration tests of confab's Kaizala face (REST API v1: connector login, groups, subgroups,
//! members, public-group subscribers, messages), its admin API, and the cases that cross to the
//! ACS face. Each test starts its own in-memory server on a random port, with a clock the test
//! moves by hand, and speaks plain HTTP to it.
//!
//! One test binary for all Kaizala tests (CI build time); the response reader is shared with the
//! ACS tests (`common/resp.rs`).

#[path = "common/cli.rs"]
mod cli;
#[path = "common/local.rs"]
mod local;
#[path = "common/resp.rs"]
mod resp;
#[path = "common/signature.rs"]
mod signature;
#[path = "kaizala/support.rs"]
mod support;

#[path = "kaizala/actions.rs"]
mod actions;
#[path = "kaizala/auth.rs"]
mod auth;
#[path = "kaizala/compat.rs"]
mod compat;
#[path = "kaizala/cross_face.rs"]
mod cross_face;
#[path = "kaizala/groups.rs"]
mod groups;
#[path = "kaizala/media.rs"]
mod media;
#[path = "kaizala/members.rs"]
mod members;
#[path = "kaizala/messages.rs"]
mod messages;
#[path = "kaizala/scenario.rs"]
mod scenario;
#[path = "kaizala/subgroups.rs"]
mod subgroups;
#[path = "kaizala/subscribers.rs"]
mod subscribers;
#[path = "kaizala/webhooks.rs"]
mod webhooks;
