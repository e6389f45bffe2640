-- schema.sql - Postern's PostgreSQL directory: domains, mailboxes, aliases, transports.
--
-- "postctl init --backend pgsql --pg-dsn DSN" creates these tables (if missing) and writes
-- the map files next to main.cf (pgsql/*.cf) that read them; "postctl domain/user/alias"
-- then write here, and so may a hosting panel. Names are stored in lower case.
-- Every statement is idempotent: running the file again changes nothing.

CREATE TABLE IF NOT EXISTS domains (
    domain      text PRIMARY KEY CHECK (domain = lower(domain) AND domain <> ''),
    class       text NOT NULL DEFAULT 'mailbox' CHECK (class IN ('mailbox', 'alias', 'relay')),
    active      boolean NOT NULL DEFAULT true,
    created     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS mailboxes (
    address     text PRIMARY KEY CHECK (address = lower(address) AND address LIKE '_%@_%'),
    domain      text NOT NULL REFERENCES domains (domain) ON DELETE CASCADE,
    password    text NOT NULL DEFAULT '',       -- {SCHEME}hash as "postctl pw" writes it; '': no login
    maildir     text NOT NULL,                  -- relative to virtual_mailbox_base: domain/user/
    quota       bigint NOT NULL DEFAULT 0 CHECK (quota >= 0),  -- bytes; 0: none
    active      boolean NOT NULL DEFAULT true,  -- false: no mail accepted, no login
    allow_imap  boolean NOT NULL DEFAULT true,
    allow_smtp  boolean NOT NULL DEFAULT true,  -- SMTP AUTH (submission)
    last_login  timestamptz,
    created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS mailboxes_domain ON mailboxes (domain);

-- One row per destination: several rows for one address are one alias to all of them.
CREATE TABLE IF NOT EXISTS aliases (
    address     text NOT NULL CHECK (address = lower(address)),
    goto        text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    PRIMARY KEY (address, goto)
);

-- transport_maps: an address, a domain or a .parent domain -> smtp:[host]:port, lmtp:..., error:...
CREATE TABLE IF NOT EXISTS transports (
    destination text PRIMARY KEY CHECK (destination = lower(destination)),
    transport   text NOT NULL
);
