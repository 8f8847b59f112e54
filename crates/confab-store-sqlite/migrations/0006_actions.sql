-- confab schema, version 6: Kaizala actions (surveys, jobs, polls, announcements, let's-meet,
-- custom action packages) and their responses.
--
--   * An action is a message (type 'text', its title as content) plus a row here keyed by the
--     message id, so every message read (ACS list, subscriber audiences, retention) works on it
--     unchanged. The body is JSON (confab_core::actions::ActionBody).
--   * Listing a group's actions is a keyset walk on (conversation, message_id) — message ids
--     follow creation time — optionally per kind or custom package.
--   * Responses are keyed by their GUID; (action_id, id_seq) orders them, and
--     (action_id, responder) answers "has this responder responded" for the one-response rule.

CREATE TABLE actions (
    message_id   INTEGER PRIMARY KEY NOT NULL,
    conversation BLOB    NOT NULL,
    kind         TEXT    NOT NULL,
    package      TEXT COLLATE NOCASE,
    created_on   INTEGER NOT NULL,
    due_on       INTEGER,
    body         TEXT    NOT NULL
);

CREATE INDEX actions_by_conversation ON actions (conversation, message_id);
CREATE INDEX actions_by_kind ON actions (conversation, kind, message_id);
CREATE INDEX actions_by_package ON actions (conversation, package, message_id)
    WHERE package IS NOT NULL;

CREATE TABLE action_responses (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    action_id    INTEGER NOT NULL,
    responder    TEXT    NOT NULL,
    completed    INTEGER,
    created_on   INTEGER NOT NULL,
    updated_on   INTEGER,
    body         TEXT    NOT NULL
);

CREATE INDEX action_responses_by_action ON action_responses (action_id, seq);
CREATE INDEX action_responses_by_responder ON action_responses (action_id, responder);
