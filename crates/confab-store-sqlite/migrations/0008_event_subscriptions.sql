-- ACS event subscriptions (Event Grid / CloudEvents) share the webhook tables: they are
-- webhooks on the object 'Resource' (every conversation), made by an admin (owner ''), with
-- their own envelope, a name, and an optional filter of threads.

ALTER TABLE webhooks ADD COLUMN schema TEXT NOT NULL DEFAULT 'Kaizala';
ALTER TABLE webhooks ADD COLUMN name TEXT;
ALTER TABLE webhooks ADD COLUMN threads TEXT NOT NULL DEFAULT '[]'; -- JSON array of thread ids
