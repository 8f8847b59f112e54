//! `MediaStore`: media records and message–media links (migration 0005). The writes run on the
//! writer thread like every other write; the reads on the read pool.

use confab_core::ids::{ConversationId, IdentityId, MessageId};
use confab_core::ports::{MediaKind, MediaRecord, StoreError, StoreResult};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::codec::{conv_key, identity_at, is_constraint_violation, micros, time_at, DbResult};
use crate::writer::Writer;

const MEDIA_COLUMNS: &str = "id, uploader, kind, content_type, file_name, size, sha256, created_on";

fn media_from_row(row: &Row<'_>) -> rusqlite::Result<MediaRecord> {
    let kind: String = row.get(2)?;
    let size: i64 = row.get(5)?;
    Ok(MediaRecord {
        id: row.get(0)?,
        uploader: identity_at(row, 1)?,
        kind: MediaKind::parse(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                2,
                Type::Text,
                format!("unknown media kind {kind:?}").into(),
            )
        })?,
        content_type: row.get(3)?,
        file_name: row.get(4)?,
        size: u64::try_from(size).unwrap_or(0),
        sha256: row.get(6)?,
        created_on: time_at(row, 7)?,
    })
}

impl Writer {
    /// Inserts the records; all or none (a failure after the first insert makes the writer
    /// re-run the batch with this job in its own savepoint).
    pub(crate) fn put_media(&mut self, records: &[MediaRecord]) -> StoreResult<()> {
        let mut insert = self
            .conn
            .prepare_cached(&format!(
                "INSERT INTO media ({MEDIA_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))
            .db()?;
        for record in records {
            let result = insert.execute(params![
                record.id,
                record.uploader.as_str(),
                record.kind.as_str(),
                record.content_type,
                record.file_name,
                i64::try_from(record.size).unwrap_or(i64::MAX),
                record.sha256,
                micros(record.created_on),
            ]);
            match result {
                Ok(_) => {}
                Err(err) if is_constraint_violation(&err) => {
                    return Err(StoreError::Conflict("the media id exists".into()))
                }
                Err(err) => return Err::<(), _>(err).db(),
            }
        }
        Ok(())
    }

    pub(crate) fn link_message_media(
        &mut self,
        conversation: ConversationId,
        message: MessageId,
        media: &[String],
    ) -> StoreResult<()> {
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO message_media (media, conversation, message_id) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )
            .db()?;
        for id in media {
            insert
                .execute(params![id, conv_key(conversation), message.0])
                .db()?;
        }
        Ok(())
    }
}

pub(crate) fn get_media(conn: &Connection, id: &str) -> StoreResult<Option<MediaRecord>> {
    conn.prepare_cached(&format!("SELECT {MEDIA_COLUMNS} FROM media WHERE id = ?1"))
        .db()?
        .query_row([id], media_from_row)
        .optional()
        .db()
}

/// Whether a live message of a live conversation carries the media and reaches `identity`: as
/// a participant (every message), or as a subscriber (messages whose audience names it or all
/// subscribers).
pub(crate) fn media_visible_to(
    conn: &Connection,
    id: &str,
    identity: &IdentityId,
) -> StoreResult<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM message_media AS mm
             JOIN messages AS m ON m.conversation = mm.conversation AND m.id = mm.message_id
             JOIN conversations AS c ON c.id = mm.conversation
             WHERE mm.media = ?1 AND m.deleted_on IS NULL AND c.deleted_on IS NULL
               AND (EXISTS (SELECT 1 FROM participants AS p
                            WHERE p.conversation = mm.conversation AND p.identity = ?2)
                    OR EXISTS (SELECT 1 FROM subscribers AS s
                               JOIN message_audience AS a
                                 ON a.conversation = s.conversation
                                AND a.message_id = mm.message_id
                                AND a.identity IN (?2, '*')
                               WHERE s.conversation = mm.conversation AND s.identity = ?2))
             LIMIT 1",
        )
        .db()?
        .query_row(params![id, identity.as_str()], |_| Ok(()))
        .optional()
        .db()?
        .is_some())
}
