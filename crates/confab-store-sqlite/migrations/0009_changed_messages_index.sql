-- "What changed since t" indexes only the messages that changed after they were created.
--
-- Every appended message went into three indexes; `messages_by_change` now holds only the edited
-- and deleted messages (a partial index), so an append writes one index entry less. A message
-- created at or after t has an id >= t (an id is max(previous id + 1, creation time in µs)), so
-- the listing finds those through `messages_by_conversation`, and only the older ones that
-- changed since through this index.
--
-- Numbered 0009: 0008 is taken by the webhook work on another branch; merged, this one comes
-- after it.

DROP INDEX messages_by_change;
CREATE INDEX messages_by_change ON messages (conversation, changed_on, id)
    WHERE edited_on IS NOT NULL OR deleted_on IS NOT NULL;
