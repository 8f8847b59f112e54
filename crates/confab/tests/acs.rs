//! Integration tests of confab's ACS face (Identity 2023-10-01 and Chat 2025-03-15), written
//! from the swagger files and NOTES.md. Each test starts its own in-memory server on a random
//! port and speaks plain HTTP to it: Identity calls HMAC-signed, chat calls with bearer tokens.

#[path = "common/cli.rs"]
mod cli;
#[path = "common/local.rs"]
mod local;
#[path = "common/resp.rs"]
mod resp;
#[path = "common/signature.rs"]
mod signature;
#[path = "acs/support.rs"]
mod support;

#[path = "acs/auth.rs"]
mod auth;
#[path = "acs/errors.rs"]
mod errors;
#[path = "acs/events.rs"]
mod events;
#[path = "acs/identity.rs"]
mod identity;
#[path = "acs/messages.rs"]
mod messages;
#[path = "acs/participants.rs"]
mod participants;
#[path = "acs/receipts.rs"]
mod receipts;
#[path = "acs/system_messages.rs"]
mod system_messages;
#[path = "acs/threads.rs"]
mod threads;
