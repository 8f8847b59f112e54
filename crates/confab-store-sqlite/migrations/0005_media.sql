-- confab schema, version 5: uploaded media (Kaizala `POST /media`).
--
--   * media: one row per uploaded file. The bytes live in the blob store under a key derived
--     from the random id (`<first 2 hex>/<id>`); the row keeps what serving needs (type, size,
--     hash) and who uploaded it.
--   * message_media: which message carries which media. Filled by the actions that post media
--     to a group; a file is visible to the members (and reached subscribers) of the
--     conversations whose live messages carry it.

CREATE TABLE media (
    id           TEXT    PRIMARY KEY NOT NULL,
    uploader     TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    file_name    TEXT,
    size         INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    created_on   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE message_media (
    media        TEXT    NOT NULL,
    conversation BLOB    NOT NULL,
    message_id   INTEGER NOT NULL,
    PRIMARY KEY (media, conversation, message_id)
) WITHOUT ROWID;

-- "Which media does this message carry" (serving a message's attachments, deleting them).
CREATE INDEX message_media_by_message ON message_media (conversation, message_id);
