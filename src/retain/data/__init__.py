"""Dataset specs, loading, validation, versioning, download and synthesis."""
