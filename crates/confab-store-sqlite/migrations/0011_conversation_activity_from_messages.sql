-- A conversation's last activity and the sequence id of its newest message are read from that
-- newest message (one step down the (conversation, id) index, then its row) instead of being
-- kept in the conversation row. An append then writes no page of the conversations table: with
-- many active threads that was one more dirty page per message in every commit, and one more
-- statement (an UPDATE … RETURNING) per append. Messages are never removed, so the newest
-- message always holds the two values these columns held.

ALTER TABLE conversations DROP COLUMN last_message_on;
ALTER TABLE conversations DROP COLUMN last_sequence_id;
