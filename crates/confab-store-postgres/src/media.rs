//! `MediaStore`: media records and message–media links.

use async_trait::async_trait;
use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::ports::{MediaKind, MediaRecord, MediaStore, StoreError, StoreResult};
use confab_store_common::stored::{conv_key, micros};
use postgres::Row;

use crate::db::{get, identity_at, time_at, Queries};
use crate::writer::Writer;
use crate::PostgresStore;

fn media_from_row(row: &Row) -> StoreResult<MediaRecord> {
    let kind: &str = get(row, 2)?;
    let size: i64 = get(row, 5)?;
    Ok(MediaRecord {
        id: get(row, 0)?,
        uploader: identity_at(row, 1)?,
        kind: MediaKind::parse(kind)
            .ok_or_else(|| StoreError::Unavailable(format!("unknown media kind {kind:?}")))?,
        content_type: get(row, 3)?,
        file_name: get(row, 4)?,
        size: u64::try_from(size).unwrap_or(0),
        sha256: get(row, 6)?,
        created_on: time_at(row, 7)?,
    })
}

impl Writer {
    /// Links media to a message; linking again is a no-op.
    pub(crate) fn link_message_media(
        &self,
        conversation: ConversationId,
        message: MessageId,
        media: &[String],
    ) -> StoreResult<()> {
        let key = conv_key(conversation);
        for id in media {
            self.db.execute(
                "INSERT INTO message_media (media, conversation, message_id)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[id, &key.as_slice(), &message.0],
            )?;
        }
        Ok(())
    }
}

#[async_trait]
impl MediaStore for PostgresStore {
    /// All or none: a conflict after the first insert fails the job, whose savepoint then
    /// undoes the others (see `writer.rs`).
    async fn put_media(&self, records: Vec<MediaRecord>) -> StoreResult<()> {
        self.writer
            .call(move |w| {
                for record in &records {
                    let inserted = w.db.execute(
                        "INSERT INTO media (id, uploader, kind, content_type, file_name, size,
                             sha256, created_on)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING",
                        &[
                            &record.id,
                            &record.uploader.as_str(),
                            &record.kind.as_str(),
                            &record.content_type,
                            &record.file_name,
                            &i64::try_from(record.size).unwrap_or(i64::MAX),
                            &record.sha256,
                            &micros(record.created_on),
                        ],
                    )?;
                    if inserted == 0 {
                        return Err(StoreError::Conflict("the media id exists".into()));
                    }
                }
                Ok(())
            })
            .await
    }

    async fn get_media(&self, id: &str) -> StoreResult<Option<MediaRecord>> {
        self.reader()
            .await?
            .query_opt(
                "SELECT id, uploader, kind, content_type, file_name, size, sha256, created_on
                 FROM media WHERE id = $1",
                &[&id],
            )
            .await?
            .as_ref()
            .map(media_from_row)
            .transpose()
    }

    async fn link_message_media(
        &self,
        conversation: ConversationId,
        message: MessageId,
        media: Vec<String>,
    ) -> StoreResult<()> {
        self.writer
            .call(move |w| w.link_message_media(conversation, message, &media))
            .await
    }

    /// Whether a live message of a live conversation carries the media and reaches `identity`:
    /// as a participant (every message), or as a subscriber (messages whose audience names it
    /// or all subscribers).
    async fn media_visible_to(&self, id: &str, identity: &IdentityId) -> StoreResult<bool> {
        Ok(self
            .reader()
            .await?
            .query_opt(
                "SELECT 1 FROM message_media AS mm
                     JOIN messages AS m ON m.conversation = mm.conversation AND m.id = mm.message_id
                     JOIN conversations AS c ON c.id = mm.conversation
                     WHERE mm.media = $1 AND m.deleted_on IS NULL AND c.deleted_on IS NULL
                       AND (EXISTS (SELECT 1 FROM participants AS p
                                    WHERE p.conversation = mm.conversation AND p.identity = $2)
                            OR EXISTS (SELECT 1 FROM subscribers AS s
                                       JOIN message_audience AS a
                                         ON a.conversation = s.conversation
                                        AND a.message_id = mm.message_id
                                        AND a.identity IN ($2, '*')
                                       WHERE s.conversation = mm.conversation
                                         AND s.identity = $2))
                     LIMIT 1",
                &[&id, &identity.as_str()],
            )
            .await?
            .is_some())
    }
}
