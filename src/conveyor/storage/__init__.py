"""Asset bytes: one ``StorageBackend`` port with local-directory, S3 and in-memory backends.

Everything above this package stores and reads files through the port and never learns
which backend is configured; ``create_storage`` picks it from the settings. Keys are
content-addressed (``content_key``), uploads are spooled and hashed before storing
(``ingest``), and ZIP downloads are streamed as they are read (``stream_zip``).
"""

from __future__ import annotations

from conveyor.config import Settings
from conveyor.storage.base import (
    DEFAULT_CHUNK_SIZE,
    InvalidKey,
    ObjectNotFound,
    ObjectStream,
    StorageBackend,
    StorageError,
    StorageUnavailable,
    file_chunks,
)
from conveyor.storage.ingest import IngestedFile, ingest, store_ingested
from conveyor.storage.keys import check_key, content_key
from conveyor.storage.local import LocalStorage
from conveyor.storage.memory import MemoryStorage
from conveyor.storage.zipstream import ZipEntry, safe_zip_name, stream_zip

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "IngestedFile",
    "InvalidKey",
    "LocalStorage",
    "MemoryStorage",
    "ObjectNotFound",
    "ObjectStream",
    "S3Storage",
    "StorageBackend",
    "StorageError",
    "StorageUnavailable",
    "ZipEntry",
    "check_key",
    "content_key",
    "create_storage",
    "file_chunks",
    "ingest",
    "safe_zip_name",
    "store_ingested",
    "stream_zip",
]


def create_storage(settings: Settings) -> StorageBackend:
    """The backend the settings ask for (``CONVEYOR_STORAGE``: local, s3 or memory)."""
    if settings.storage == "memory":
        return MemoryStorage()
    if settings.storage == "s3":
        # Imported here: botocore costs ~40 MB of memory in every process that never uses S3.
        from conveyor.storage.s3 import S3Storage

        return S3Storage(
            settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key,
        )
    return LocalStorage(settings.resolved_storage_path)


def __getattr__(name: str) -> object:
    # ``S3Storage`` is exported, but loaded only when asked for (see ``create_storage``).
    if name == "S3Storage":
        from conveyor.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
