"""Model registry: every model lfa can use, where its files come from, and the local cache."""

from lfa.registry.catalog import CATALOG, get_record
from lfa.registry.records import ModelFile, ModelRecord, PackagedFile
from lfa.registry.store import ModelStatus, ModelStore, lfa_home

__all__ = [
    "CATALOG",
    "ModelFile",
    "ModelRecord",
    "ModelStatus",
    "ModelStore",
    "PackagedFile",
    "get_record",
    "lfa_home",
]
