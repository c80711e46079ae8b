"""Batch scoring of files (pandas in one process; a Dask backend scales it out)."""
