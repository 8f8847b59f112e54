-- The messages table without its UNIQUE (conversation, sequence_id) constraint.
--
-- Nothing reads messages by sequence id, and the writer hands sequence ids out from
-- `conversations.last_sequence_id` in the same statement that checks the conversation, so the
-- constraint's index only cost every append one more b-tree insert (with many active threads, one
-- more dirty page per message in each commit). SQLite cannot drop a constraint's index, hence the
-- rebuild: same columns in the same order, same rowid (the message id), same two indexes.

CREATE TABLE messages_rebuilt (
    id                  INTEGER PRIMARY KEY NOT NULL,
    conversation        BLOB    NOT NULL,
    sequence_id         INTEGER NOT NULL,
    kind                TEXT    NOT NULL,
    content             TEXT    NOT NULL,
    sender              TEXT,
    sender_display_name TEXT,
    metadata            TEXT,
    version             INTEGER NOT NULL,
    created_on          INTEGER NOT NULL,
    edited_on           INTEGER,
    deleted_on          INTEGER,
    -- max(created_on, edited_on, deleted_on): what `changed_since` filters on.
    changed_on          INTEGER NOT NULL,
    -- Who besides the members may read it: NULL the members, `*` every subscriber, or a JSON
    -- array of raw ids.
    audience            TEXT
);

INSERT INTO messages_rebuilt (id, conversation, sequence_id, kind, content, sender,
        sender_display_name, metadata, version, created_on, edited_on, deleted_on, changed_on,
        audience)
    SELECT id, conversation, sequence_id, kind, content, sender, sender_display_name, metadata,
        version, created_on, edited_on, deleted_on, changed_on, audience
    FROM messages ORDER BY id;

DROP TABLE messages;
ALTER TABLE messages_rebuilt RENAME TO messages;

-- Keyset paging newest first: (conversation = ? AND id < ?) ORDER BY id DESC.
CREATE INDEX messages_by_conversation ON messages (conversation, id);
-- "What changed since t" for the messages changed after they were created (see 0009).
CREATE INDEX messages_by_change ON messages (conversation, changed_on, id)
    WHERE edited_on IS NOT NULL OR deleted_on IS NOT NULL;
