-- confab schema, version 1.
--
-- Conventions:
--   * times are INTEGER unix microseconds (UTC);
--   * a conversation id is its 128 bits as a 16-byte big-endian BLOB, so that BLOB order (memcmp)
--     is numeric order and keyset paging on it works;
--   * identities are their raw ACS id TEXT;
--   * metadata is a JSON object TEXT, NULL when empty.
-- No FOREIGN KEY clauses: rows are only ever written by the single writer, which checks the
-- parent rows itself, and conversations are never hard-deleted; FK checks would only add lookups
-- to the hot path.

CREATE TABLE identities (
    id               TEXT    PRIMARY KEY NOT NULL,
    created_on       INTEGER NOT NULL,
    token_generation INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE conversations (
    id                BLOB    PRIMARY KEY NOT NULL,
    topic             TEXT    NOT NULL,
    created_by        TEXT    NOT NULL,
    created_on        INTEGER NOT NULL,
    deleted_on        INTEGER,
    metadata          TEXT,
    retention_days    INTEGER,
    -- created_on + retention_days, precomputed so that expiry is an index range scan.
    expires_on        INTEGER,
    last_message_on   INTEGER,
    -- The sequence id of the newest message. Kept here (not in writer memory) so that the one
    -- UPDATE that every append needs anyway (last_message_on) also hands out the next sequence
    -- id, and a rolled-back savepoint rolls it back with everything else.
    last_sequence_id  INTEGER NOT NULL DEFAULT 0,
    repeatability_key TEXT    UNIQUE
) WITHOUT ROWID;

CREATE INDEX conversations_expiry ON conversations (expires_on)
    WHERE deleted_on IS NULL AND expires_on IS NOT NULL;

CREATE TABLE participants (
    conversation       BLOB    NOT NULL,
    identity           TEXT    NOT NULL,
    display_name       TEXT,
    share_history_time INTEGER,
    metadata           TEXT,
    role               TEXT    NOT NULL,
    added_on           INTEGER NOT NULL,
    PRIMARY KEY (conversation, identity)
) WITHOUT ROWID;

-- "Which conversations is this identity in" (list_conversations).
CREATE INDEX participants_by_identity ON participants (identity, conversation);

CREATE TABLE messages (
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
    UNIQUE (conversation, sequence_id)
);

-- Keyset paging newest first: (conversation = ? AND id < ?) ORDER BY id DESC.
CREATE INDEX messages_by_conversation ON messages (conversation, id);
-- "What changed since t" in one conversation.
CREATE INDEX messages_by_change ON messages (conversation, changed_on, id);

CREATE TABLE read_receipts (
    conversation BLOB    NOT NULL,
    reader       TEXT    NOT NULL,
    message_id   INTEGER NOT NULL,
    read_on      INTEGER NOT NULL,
    PRIMARY KEY (conversation, reader)
) WITHOUT ROWID;

-- The event log. AUTOINCREMENT so that a position is never reused, even after old events are
-- pruned: reconnecting clients resume from a position.
CREATE TABLE events (
    position     INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation BLOB,
    kind         TEXT    NOT NULL,
    message_id   INTEGER,
    identity     TEXT,
    payload      TEXT    NOT NULL,
    at           INTEGER NOT NULL
);

-- Small persistent counters. `id_clock` is the high-water mark of the message id clock when an
-- edit or delete pushed it past MAX(messages.id), so ids and versions stay strictly increasing
-- across restarts.
CREATE TABLE meta (
    key   TEXT    PRIMARY KEY NOT NULL,
    value INTEGER NOT NULL
) WITHOUT ROWID;
