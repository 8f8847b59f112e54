-- Webhook subscriptions (Kaizala connectors/webHooks.md) and their delivery outbox: one
-- delivery row per event and matching active subscription, written in the event's own
-- transaction.

CREATE TABLE webhooks (
    id               TEXT    PRIMARY KEY NOT NULL,
    object_type      TEXT    NOT NULL,
    object_id        TEXT    NOT NULL,
    event_types      TEXT    NOT NULL, -- JSON array of event type names
    callback_url     TEXT    NOT NULL,
    callback_token   TEXT,
    callback_context TEXT,
    secret           TEXT    NOT NULL,
    owner            TEXT    NOT NULL,
    validity         INTEGER NOT NULL, -- µs
    active           INTEGER NOT NULL,
    created_on       INTEGER NOT NULL,
    disabled_reason  TEXT
) WITHOUT ROWID;

CREATE INDEX webhooks_by_object ON webhooks (object_type, object_id);

CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook         TEXT    NOT NULL,
    event_position  INTEGER NOT NULL,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    order_key       TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL, -- pending | delivered | failed
    attempts        INTEGER NOT NULL DEFAULT 0,
    round_start     INTEGER NOT NULL DEFAULT 0,
    next_attempt_on INTEGER NOT NULL, -- µs
    last_attempt_on INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_on      INTEGER NOT NULL,
    delivered_on    INTEGER
);

-- The head of each (webhook, order key) line, and the log of a webhook.
CREATE INDEX webhook_deliveries_line ON webhook_deliveries (webhook, order_key, status, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_on);
