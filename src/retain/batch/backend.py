"""The batch scoring backends (a light module: the CLI imports it to declare its options)."""

from enum import StrEnum


class Backend(StrEnum):
    """Where a file of students is scored.

    ``local`` streams the input in chunks through one process (bounded memory); ``dask`` maps the
    same per-partition function over the input's partitions on a Dask cluster.
    """

    local = "local"
    dask = "dask"
