-- Lists paged by an identity or an id (participants, members, read receipts, subscribers; ties
-- of applications and webhooks) are ordered and compared in byte order, as the SQLite store
-- orders them, whatever the database's default collation (`en_US.UTF-8` would sort `+1425…`
-- and `8:acs:…` differently, and case-insensitively).
ALTER TABLE participants ALTER COLUMN identity TYPE TEXT COLLATE "C";
ALTER TABLE read_receipts ALTER COLUMN reader TYPE TEXT COLLATE "C";
ALTER TABLE subscribers ALTER COLUMN identity TYPE TEXT COLLATE "C";
ALTER TABLE message_audience ALTER COLUMN identity TYPE TEXT COLLATE "C";
ALTER TABLE applications ALTER COLUMN id TYPE TEXT COLLATE "C";
ALTER TABLE webhooks ALTER COLUMN id TYPE TEXT COLLATE "C";
