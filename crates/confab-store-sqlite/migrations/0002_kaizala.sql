-- confab schema, version 2: the Kaizala face.
--
--   * conversations get a kind ('chat' for ACS threads, 'group' and 'connectGroup' for Kaizala
--     groups) and a welcome message;
--   * connector applications, pending PINs and refresh tokens. Secrets are kept as SHA-256
--     hashes only (BLOB, 32 bytes); permission lists are comma-separated TEXT.

ALTER TABLE conversations ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE conversations ADD COLUMN welcome_message TEXT;

CREATE TABLE applications (
    id          TEXT    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    secret_hash BLOB    NOT NULL,
    scopes      TEXT    NOT NULL,
    created_on  INTEGER NOT NULL
) WITHOUT ROWID;

-- One pending PIN per application and phone number; a new one replaces it.
CREATE TABLE pins (
    application   TEXT    NOT NULL,
    identity      TEXT    NOT NULL,
    pin_hash      BLOB    NOT NULL,
    expires_on    INTEGER NOT NULL,
    attempts_left INTEGER NOT NULL,
    PRIMARY KEY (application, identity)
) WITHOUT ROWID;

CREATE INDEX pins_expiry ON pins (expires_on);

CREATE TABLE refresh_tokens (
    hash        BLOB    PRIMARY KEY NOT NULL,
    application TEXT    NOT NULL,
    identity    TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    created_on  INTEGER NOT NULL,
    expires_on  INTEGER NOT NULL
) WITHOUT ROWID;

-- A new login replaces the tokens of its application and identity; deleting an application
-- deletes its tokens.
CREATE INDEX refresh_tokens_by_owner ON refresh_tokens (application, identity);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_on);
