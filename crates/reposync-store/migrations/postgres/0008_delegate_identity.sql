-- Delegate identity.

-- The selectors a delegate token is restricted to, as a JSON list; NULL for an unrestricted
-- token. A restricted token's delegates may only claim tasks whose connector asks for at least
-- one selector, every one of them in this list. The restriction is set when the token is
-- created and never changes.
--
-- A delegate's name needs no new column: it belongs to the token that first registered it
-- (`delegates.token_id`) for as long as that token is not revoked.
ALTER TABLE delegate_tokens ADD COLUMN selectors TEXT COLLATE "C";
