"""The numpy core: the normalizations and array statistics (no click, no rich)."""
