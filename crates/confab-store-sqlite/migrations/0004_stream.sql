-- confab schema, version 4: what the real-time stream reads.
--
--   * "which conversations does this identity follow" when a stream opens reads participants
--     by identity (participants_by_identity) and subscribers by identity (this index), so that
--     opening a stream never scans the subscribers of every public group.
--   * The event log itself needs nothing new: a stream resumes with a keyset read on
--     `events.position` (the rowid), retention deletes a position range and records how far it
--     got in `meta` ('events_purged_through'), and the newest position is sqlite_sequence's.

CREATE INDEX subscribers_by_identity ON subscribers (identity, conversation);
