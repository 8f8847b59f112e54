-- The messages table keyed by (conversation, id), WITHOUT ROWID: a conversation's messages sit
-- together in id order, in the table's own b-tree.
--
-- Before, rows were in id (time) order and `messages_by_conversation` pointed into them: a page
-- of 50 messages was a walk down that index plus 50 separate descents into the table, and with
-- many active threads those 50 rows lay on up to 50 different pages (each thread's messages
-- interleaved with every other's). Now a page is one range of adjacent rows, and an append is
-- one b-tree insert instead of two (the table and the index).
--
-- Same columns in the same order; `messages_by_change` is rebuilt on the new table.

CREATE TABLE messages_clustered (
    id                  INTEGER NOT NULL,
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
    audience            TEXT,
    PRIMARY KEY (conversation, id)
) WITHOUT ROWID;

INSERT INTO messages_clustered (id, conversation, sequence_id, kind, content, sender,
        sender_display_name, metadata, version, created_on, edited_on, deleted_on, changed_on,
        audience)
    SELECT id, conversation, sequence_id, kind, content, sender, sender_display_name, metadata,
        version, created_on, edited_on, deleted_on, changed_on, audience
    FROM messages ORDER BY conversation, id;

DROP TABLE messages;
ALTER TABLE messages_clustered RENAME TO messages;

-- "What changed since t" for the messages changed after they were created (see 0009).
CREATE INDEX messages_by_change ON messages (conversation, changed_on, id)
    WHERE edited_on IS NOT NULL OR deleted_on IS NOT NULL;
