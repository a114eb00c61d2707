-- A connector is also the Source Repo Provider file `Setup/Source Repo Providers/<name>.yaml`.
-- `file` holds that file as last written: the connector's fields overlaid on the YAML it came
-- from, so that keys reposync does not model survive. NULL for connectors written before this
-- column existed; they are rendered from their spec alone.
ALTER TABLE connectors ADD COLUMN file TEXT COLLATE "C";
