-- confab schema, version 3: subgroups, subscribers of public groups, message audiences.
--
--   * subgroups: the edges of the group DAG (parent → child). The writer refuses an edge that
--     would close a cycle (a recursive walk down from the child) before inserting it.
--   * subscribers of public groups, kept apart from participants so that member lists, member
--     counts and the participant limit never see them.
--   * a message's audience: NULL for the members only, '*' for every subscriber, or a JSON array
--     of the subscribers' raw ids. message_audience indexes it for subscriber reads: one row per
--     listed subscriber, or one row with identity '*' (which no raw id can be) for all of them.
--     A subscriber's page is two keyset walks on its primary key, never a scan of the members'
--     messages.

CREATE TABLE subgroups (
    parent   BLOB    NOT NULL,
    child    BLOB    NOT NULL,
    added_on INTEGER NOT NULL,
    added_by TEXT    NOT NULL,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;

-- "Who are the parents of this group" (counts, hasParentGroups).
CREATE INDEX subgroups_by_child ON subgroups (child, parent);

CREATE TABLE subscribers (
    conversation BLOB    NOT NULL,
    identity     TEXT    NOT NULL,
    added_on     INTEGER NOT NULL,
    PRIMARY KEY (conversation, identity)
) WITHOUT ROWID;

ALTER TABLE messages ADD COLUMN audience TEXT;

CREATE TABLE message_audience (
    conversation BLOB    NOT NULL,
    identity     TEXT    NOT NULL,
    message_id   INTEGER NOT NULL,
    PRIMARY KEY (conversation, identity, message_id)
) WITHOUT ROWID;
