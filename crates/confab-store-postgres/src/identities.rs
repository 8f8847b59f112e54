//! Identities: who may hold tokens, and their token generation.

use confab_core::ids::IdentityId;
use confab_core::model::Identity;
use confab_core::ports::{StoreError, StoreResult};
use confab_store_common::stored::micros;
use postgres::Row;

use crate::db::{get, identity_at, time_at, Queries};
use crate::writer::Writer;

fn identity_from_row(row: &Row) -> StoreResult<Identity> {
    let generation: i64 = get(row, 2)?;
    Ok(Identity {
        id: identity_at(row, 0)?,
        created_on: time_at(row, 1)?,
        token_generation: u32::try_from(generation)
            .map_err(|_| StoreError::Unavailable(format!("token generation {generation}")))?,
    })
}

pub(crate) async fn get_identity(
    db: &impl Queries,
    id: &IdentityId,
) -> StoreResult<Option<Identity>> {
    db.query_opt(
        "SELECT id, created_on, token_generation FROM identities WHERE id = $1",
        &[&id.as_str()],
    )
    .await?
    .as_ref()
    .map(identity_from_row)
    .transpose()
}

impl Writer {
    /// Creates an identity (`Conflict` if it exists).
    pub(crate) fn create_identity(&mut self, identity: &Identity) -> StoreResult<()> {
        let inserted = self.db.execute(
            "INSERT INTO identities (id, created_on, token_generation)
             VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
            &[
                &identity.id.as_str(),
                &micros(identity.created_on),
                &i64::from(identity.token_generation),
            ],
        )?;
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "identity {} already exists",
                identity.id
            )));
        }
        Ok(())
    }

    /// Invalidates every token minted so far; answers the new generation (`NotFound` if
    /// unknown).
    pub(crate) fn bump_token_generation(&mut self, id: &IdentityId) -> StoreResult<u32> {
        let row = self
            .db
            .query_opt(
                "UPDATE identities SET token_generation = token_generation + 1
                 WHERE id = $1 RETURNING token_generation",
                &[&id.as_str()],
            )?
            .ok_or(StoreError::NotFound)?;
        let generation: i64 = get(&row, 0)?;
        u32::try_from(generation)
            .map_err(|_| StoreError::Conflict("token generation exhausted".into()))
    }

    /// Deletes the identity (`NotFound` if unknown).
    pub(crate) fn delete_identity(&mut self, id: &IdentityId) -> StoreResult<()> {
        let deleted = self
            .db
            .execute("DELETE FROM identities WHERE id = $1", &[&id.as_str()])?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
