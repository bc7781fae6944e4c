"""The DuckDB tables as ordered migrations (NNN_name.sql), with their COMMENT ON descriptions (docs/schema.md is
generated from them); the views are defined in fpprov/db/views.sql."""
