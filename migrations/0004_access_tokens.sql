-- Count catalog, version 4: access tokens (AUTH_REQUIRED). Never edit once released.

-- One row per token `countdb token create` made. The secret itself is never stored: `token_hash` is the
-- SHA-256 of the whole token (hex); a request's token is found by its public `token_id` and its hash compared
-- in constant time. A revoked token keeps its row (revoked_ms set) so `countdb token list` can show it.
CREATE TABLE access_tokens (
    token_id    TEXT    PRIMARY KEY,       -- 12 hex digits, the public part of the token (count_<id>_<secret>)
    name        TEXT    NOT NULL,          -- who or what it is for, e.g. telegraf
    scopes      TEXT    NOT NULL,          -- comma-separated, sorted: admin, read, write
    token_hash  TEXT    NOT NULL,          -- sha256 hex of the whole token
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER                    -- NULL while the token is valid
);
