"""Package data: model aliases (models.toml), known indexes (indexes.toml) and the synthetic demo corpus."""
