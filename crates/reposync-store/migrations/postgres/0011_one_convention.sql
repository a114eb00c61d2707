-- One convention for "none" in the store: '' (never NULL) for no application and no
-- repository, so that rows join and compare with plain equality (no COALESCE). The Rust side
-- reads '' as None.
UPDATE sync_links SET repo = '' WHERE repo IS NULL;
UPDATE entities SET app = '' WHERE app IS NULL;
