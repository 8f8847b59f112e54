//! The connector (Kaizala) login's storage: applications, PINs and refresh tokens. What can race
//! (two logins with one PIN, attempts counting down) is settled inside one writer job.

use async_trait::async_trait;
use confab_core::model::{Application, PinChallenge, RefreshToken};
use confab_core::ports::connectors::constant_time_eq;
use confab_core::ports::{ConnectorStore, PinOutcome, PinRedemption, StoreError, StoreResult};
use confab_store_common::stored::{join_scopes, micros, split_scopes};
use postgres::Row;
use time::OffsetDateTime;

use crate::db::{get, hash_at, identity_at, time_at, Queries};
use crate::writer::Writer;
use crate::PostgresStore;

fn application_from_row(row: &Row) -> StoreResult<Application> {
    Ok(Application {
        id: get(row, 0)?,
        name: get(row, 1)?,
        secret_hash: hash_at(row, 2)?,
        scopes: split_scopes(get(row, 3)?),
        created_on: time_at(row, 4)?,
    })
}

fn refresh_token_from_row(row: &Row) -> StoreResult<RefreshToken> {
    Ok(RefreshToken {
        hash: hash_at(row, 0)?,
        application: get(row, 1)?,
        identity: identity_at(row, 2)?,
        scopes: split_scopes(get(row, 3)?),
        created_on: time_at(row, 4)?,
        expires_on: time_at(row, 5)?,
    })
}

impl Writer {
    fn add_refresh_token(&mut self, token: &RefreshToken) -> StoreResult<()> {
        self.db.execute(
            "INSERT INTO refresh_tokens (hash, application, identity, scopes, created_on,
                 expires_on)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &token.hash.as_slice(),
                &token.application,
                &token.identity.as_str(),
                &join_scopes(&token.scopes),
                &micros(token.created_on),
                &micros(token.expires_on),
            ],
        )?;
        Ok(())
    }

    fn delete_pin(&mut self, r: &PinRedemption) -> StoreResult<()> {
        self.db.execute(
            "DELETE FROM pins WHERE application = $1 AND identity = $2",
            &[&r.application, &r.identity.as_str()],
        )?;
        Ok(())
    }

    /// Settles a PIN login; see `ConnectorStore::redeem_pin`. Every outcome is a success of the
    /// job, so that a counted attempt commits. The row is locked while it is settled: another
    /// node redeeming the same PIN waits, then finds it gone or counted.
    fn redeem_pin(&mut self, r: &PinRedemption) -> StoreResult<PinOutcome> {
        let pending = self.db.query_opt(
            "SELECT pin_hash, expires_on, attempts_left FROM pins
             WHERE application = $1 AND identity = $2 FOR UPDATE",
            &[&r.application, &r.identity.as_str()],
        )?;
        let Some(pending) = pending else {
            return Ok(PinOutcome::Missing);
        };
        let hash: &[u8] = get(&pending, 0)?;
        let expires_on: i64 = get(&pending, 1)?;
        let attempts_left: i64 = get(&pending, 2)?;
        if expires_on <= micros(r.now) {
            self.delete_pin(r)?;
            return Ok(PinOutcome::Expired);
        }
        if !constant_time_eq(hash, &r.pin_hash) {
            let left = attempts_left.saturating_sub(1).max(0);
            if left == 0 {
                self.delete_pin(r)?;
            } else {
                self.db.execute(
                    "UPDATE pins SET attempts_left = $3 WHERE application = $1 AND identity = $2",
                    &[&r.application, &r.identity.as_str(), &left],
                )?;
            }
            return Ok(PinOutcome::Wrong {
                attempts_left: u32::try_from(left).unwrap_or(0),
            });
        }
        self.delete_pin(r)?;
        // A new login replaces the earlier refresh tokens of this application and identity.
        self.db.execute(
            "DELETE FROM refresh_tokens WHERE application = $1 AND identity = $2",
            &[&r.application, &r.identity.as_str()],
        )?;
        self.add_refresh_token(&r.refresh_token)?;
        let created = self.db.execute(
            "INSERT INTO identities (id, created_on, token_generation) VALUES ($1, $2, 0)
             ON CONFLICT (id) DO NOTHING",
            &[&r.identity.as_str(), &micros(r.now)],
        )?;
        Ok(PinOutcome::Redeemed {
            first_login: created == 1,
        })
    }
}

#[async_trait]
impl ConnectorStore for PostgresStore {
    async fn create_application(&self, application: &Application) -> StoreResult<()> {
        let application = application.clone();
        self.writer
            .call(move |w| {
                let inserted = w.db.execute(
                    "INSERT INTO applications (id, name, secret_hash, scopes, created_on)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
                    &[
                        &application.id,
                        &application.name,
                        &application.secret_hash.as_slice(),
                        &join_scopes(&application.scopes),
                        &micros(application.created_on),
                    ],
                )?;
                if inserted == 0 {
                    return Err(StoreError::Conflict(format!(
                        "application {} already exists",
                        application.id
                    )));
                }
                Ok(())
            })
            .await
    }

    async fn get_application(&self, id: &str) -> StoreResult<Option<Application>> {
        self.reader()
            .await?
            .query_opt(
                "SELECT id, name, secret_hash, scopes, created_on FROM applications
                 WHERE id = $1",
                &[&id],
            )
            .await?
            .as_ref()
            .map(application_from_row)
            .transpose()
    }

    async fn list_applications(&self) -> StoreResult<Vec<Application>> {
        self.reader()
            .await?
            .query(
                "SELECT id, name, secret_hash, scopes, created_on FROM applications
                 ORDER BY created_on, id",
                &[],
            )
            .await?
            .iter()
            .map(application_from_row)
            .collect()
    }

    async fn delete_application(&self, id: &str) -> StoreResult<()> {
        let id = id.to_owned();
        self.writer
            .call(move |w| {
                let deleted =
                    w.db.execute("DELETE FROM applications WHERE id = $1", &[&id])?;
                if deleted == 0 {
                    return Err(StoreError::NotFound);
                }
                w.db.execute("DELETE FROM pins WHERE application = $1", &[&id])?;
                w.db.execute("DELETE FROM refresh_tokens WHERE application = $1", &[&id])?;
                Ok(())
            })
            .await
    }

    async fn put_pin(&self, pin: &PinChallenge) -> StoreResult<()> {
        let pin = pin.clone();
        self.writer
            .call(move |w| {
                w.db.execute(
                    "INSERT INTO pins (application, identity, pin_hash, expires_on, attempts_left)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (application, identity) DO UPDATE SET
                         pin_hash = excluded.pin_hash,
                         expires_on = excluded.expires_on,
                         attempts_left = excluded.attempts_left",
                    &[
                        &pin.application,
                        &pin.identity.as_str(),
                        &pin.pin_hash.as_slice(),
                        &micros(pin.expires_on),
                        &i64::from(pin.attempts_left),
                    ],
                )?;
                Ok(())
            })
            .await
    }

    async fn redeem_pin(&self, redemption: PinRedemption) -> StoreResult<PinOutcome> {
        self.writer.call(move |w| w.redeem_pin(&redemption)).await
    }

    async fn get_refresh_token(&self, hash: &[u8; 32]) -> StoreResult<Option<RefreshToken>> {
        let hash = *hash;
        self.reader()
            .await?
            .query_opt(
                "SELECT hash, application, identity, scopes, created_on, expires_on
                 FROM refresh_tokens WHERE hash = $1",
                &[&hash.as_slice()],
            )
            .await?
            .as_ref()
            .map(refresh_token_from_row)
            .transpose()
    }

    async fn add_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        let token = token.clone();
        self.writer.call(move |w| w.add_refresh_token(&token)).await
    }

    async fn purge_expired_credentials(&self, now: OffsetDateTime) -> StoreResult<usize> {
        let now_us = micros(now);
        self.writer
            .call(move |w| {
                let pins =
                    w.db.execute("DELETE FROM pins WHERE expires_on <= $1", &[&now_us])?;
                let tokens = w.db.execute(
                    "DELETE FROM refresh_tokens WHERE expires_on <= $1",
                    &[&now_us],
                )?;
                usize::try_from(pins + tokens)
                    .map_err(|_| StoreError::Unavailable("purged count".into()))
            })
            .await
    }
}
