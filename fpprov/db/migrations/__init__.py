"""The DuckDB schema as ordered migrations (NNN_name.sql); their comments generate docs/schema.md."""
