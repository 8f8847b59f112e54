//! Integration tests of the real-time event stream (`/stream/events` over SSE, `/stream/ws` over
//! WebSocket) and of the polling guarantee (list messages with `startTime`). Each test starts
//! its own in-memory server on a random 127.0.0.1 port and speaks to it with real clients.
//!
//! Also two nodes sharing a PostgreSQL database (`stream/nodes.rs`, when
//! `CONFAB_TEST_POSTGRES_URL` names one), and the OpenAPI document of the stream and the admin API (`GET /openapi.json`).
//!
//! One test binary; the ACS test support (server, identities, chat calls) is shared with
//! `tests/acs.rs`.

#[path = "common/resp.rs"]
mod resp;
#[path = "acs/support.rs"]
mod support;

#[path = "stream/clients.rs"]
mod clients;

#[path = "stream/authz.rs"]
mod authz;
#[path = "stream/backpressure.rs"]
mod backpressure;
#[path = "stream/live.rs"]
mod live;
#[path = "stream/nodes.rs"]
mod nodes;
#[path = "stream/openapi.rs"]
mod openapi;
#[path = "stream/polling.rs"]
mod polling;
#[path = "stream/resume.rs"]
mod resume;
