-- Message contents too big to sit in their row. The messages table is WITHOUT ROWID, and SQLite
-- keeps at most about 1,000 bytes of such a row on its b-tree page (at 4 KiB pages); the rest
-- of a bigger row went to an overflow page of its own, three quarters empty: a thread created
-- with ten participants (its first system message names them all, ~1 KB) cost a whole page.
-- Such a row now holds '' as its content (no stored content is empty: an encoded content is a
-- JSON object) and the content sits here, in a rowid table, which keeps up to ~4 KB of a row on
-- its page and packs the rows densely in message id order.

CREATE TABLE message_bodies (
    id   INTEGER PRIMARY KEY NOT NULL,
    body TEXT    NOT NULL
);
