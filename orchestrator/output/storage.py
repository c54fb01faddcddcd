"""Where an output directory lives: a local path or an fsspec URL, behind one small API.

``Storage(location)`` resolves ``location`` with ``fsspec.core.url_to_fs``: a plain path or
``file://`` URL (a shared filesystem such as NFS is a local path on every node) gives the local
filesystem; ``s3://bucket/prefix`` and ``gs://bucket/prefix`` give an object store (needs the
``mathsynth[cloud]`` extra: s3fs, gcsfs). Other protocols are refused: their writes are not
known to be atomic.

How a file becomes visible in one step, per backend (the commit rule of ``OutputStore``):

- **local** — written under ``_mathsynth/tmp/`` first, then ``os.replace``\\d to its final name.
  The rename is atomic on POSIX filesystems (NFS included, within one directory tree), so a
  reader sees the old state or the whole file, never part of it.
- **object stores** — there is no rename (S3 and GCS "rename" is copy + delete), but a PUT is
  atomic: the object appears under its key only once its whole body was received (a multipart
  or resumable upload only once it is completed). So the final object is written in one upload,
  with no temp object, and a reader (a listing or a GET) sees no object or the whole object.
  Both stores are strongly read-after-write consistent, listings included, so a resumed run sees
  every commit made before it. Object stores have no directories: every read lists key prefixes.

Credentials and endpoints come from each backend's standard environment variables (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``, fsspec's ``FSSPEC_<PROTOCOL>_<OPTION>``); ``worker_env()``
gives those of the driver, which the engine forwards to its Ray actors.

Failures are one-line errors naming the file: a write that fails (disk full, read-only) raises
``StorageError`` after removing its temp file, so nothing half-written is left; a parquet file
that does not decode raises ``CorruptFileError``; ``check_writable`` probes a local location
before a run starts. This module knows nothing of shards, ledgers or Ray.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.implementations.local import LocalFileSystem

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs"})
# Environment read by s3fs/botocore, gcsfs and fsspec's config on every node.
FORWARDED_ENV_PREFIXES = ("AWS_", "FSSPEC_", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_")
TMP_DIR = "_mathsynth/tmp"
REMOTE_READERS = 16  # concurrent shard reads from an object store
PROBE_BYTES = 4096  # written (then removed) by check_writable: a full disk fails it


class StorageError(ValueError):
    """The output location cannot be used (unsupported protocol, missing backend package, a
    file where a directory should be, read-only, full)."""


class CorruptFileError(StorageError):
    """A committed file that cannot be read back (truncated, damaged): ``path`` names it.
    ``orchestrator.output.integrity`` finds such files and moves them to quarantine."""

    def __init__(self, path: str, reason: str, location: str = "") -> None:
        super().__init__(f"{path}: unreadable ({reason})")
        self.path, self.reason, self.location = path, reason, location

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.reason, self.location))

    @property
    def hint(self) -> str:
        where = self.location or "DIR"
        return (
            f"run `mathsynth repair {where}` to move it to {where}/_mathsynth/quarantine/ "
            "(the seeds it recorded are then run again)"
        )


def _write_error(path: str, err: OSError) -> StorageError:
    """A one-line error naming the file a write failed on and why (by errno, e.g. ENOSPC)."""
    why = err.strerror or (str(err).splitlines() or [type(err).__name__])[0]
    return StorageError(f"cannot write {path}: {why}")


def worker_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The storage variables of this process's environment, to set on workers of other nodes."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k.startswith(FORWARDED_ENV_PREFIXES)}


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


class Storage:
    """One output location: atomic whole-file writes, reads and listings relative to it."""

    def __init__(self, location: str | Path) -> None:
        try:
            fs, path = fsspec.core.url_to_fs(str(location))
        except (ImportError, ValueError) as err:
            raise StorageError(
                f"{location}: cannot open this location ({err}); object stores need "
                "`pip install 'mathsynth[cloud]'`"
            ) from err
        protocols = {fs.protocol} if isinstance(fs.protocol, str) else set(fs.protocol)
        self.local = isinstance(fs, LocalFileSystem)
        if not self.local and not protocols & OBJECT_STORES:
            raise StorageError(
                f"{location}: unsupported storage {sorted(protocols)}; use a local or shared "
                f"path, or one of {sorted(OBJECT_STORES)}"
            )
        self.fs = fs
        self.base = path.rstrip("/") if path != "/" else path
        # Local: the absolute path (workers may run elsewhere in the shared filesystem tree).
        self.url = self.base if self.local else str(location).rstrip("/")

    def path(self, name: str) -> str:
        """The full path (in ``fs``) of ``name``, relative to the location."""
        return f"{self.base}/{name}"

    def uri(self, path: str) -> str:
        """A path as a URL other fsspec users (``datasets``, ``pyarrow``) can open."""
        return path if self.local else self.fs.unstrip_protocol(path)

    def makedirs(self, *names: str) -> None:
        if self.local:  # object stores have no directories
            for name in names:
                Path(self.path(name)).mkdir(parents=True, exist_ok=True)

    # -- writes: each one is a commit of a whole file -------------------------------------------

    def _local_tmp(self, name: str) -> Path:
        tmp = Path(self.path(TMP_DIR))
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp / f"{Path(name).name}.{uuid.uuid4().hex}.tmp"

    def put_bytes(self, name: str, data: bytes) -> str:
        final = self.path(name)
        if self.local:
            with self._local_write(final) as tmp:
                tmp.write_bytes(data)
        else:
            self.fs.pipe_file(final, data)  # one upload: the object appears whole or not at all
        return final

    def put_table(self, name: str, table: pa.Table) -> str:
        if not self.local:
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            return self.put_bytes(name, sink.getvalue().to_pybytes())
        final = self.path(name)
        with self._local_write(final) as tmp:
            pq.write_table(table, tmp)
        return final

    @contextlib.contextmanager
    def _local_write(self, final: str) -> Iterator[Path]:
        """A temp path to write, renamed to ``final`` at the end. A failed write (disk full,
        read-only) removes the temp file, leaves ``final`` as it was and raises
        ``StorageError`` naming ``final``."""
        tmp: Path | None = None
        try:
            tmp = self._local_tmp(final)
            yield tmp
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
        except OSError as err:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            raise _write_error(final, err) from None

    def check_writable(self) -> None:
        """Raise ``StorageError`` when a local location cannot take files: a file where the
        directory should be, a read-only or full filesystem. Probes the directory (or its
        nearest existing parent) with a small temp file; creates nothing that stays. Object
        stores are not probed (a write is the only test, and their errors name the key)."""
        if not self.local:
            return
        path = Path(self.base)
        if path.exists() and not path.is_dir():
            raise StorageError(f"{path}: exists and is not a directory (--out must be one)")
        probe_dir = path / TMP_DIR  # where a stray probe is removed by the next cleanup
        while not probe_dir.exists():
            probe_dir = probe_dir.parent
        if not probe_dir.is_dir():
            raise StorageError(f"{path}: {probe_dir} is a file, not a directory")
        try:
            fd, name = tempfile.mkstemp(prefix=".probe-", suffix=".tmp", dir=probe_dir)
            try:
                os.write(fd, b"\0" * PROBE_BYTES)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(name)
        except OSError as err:
            raise StorageError(f"{path}: cannot write here: {err.strerror}") from None

    # -- reads ----------------------------------------------------------------------------------

    def read_bytes(self, name: str) -> bytes | None:
        """The content of ``name``, or None when it does not exist."""
        try:
            return self.fs.cat_file(self.path(name))
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        if self.local:
            return Path(self.path(name)).exists()
        self.fs.invalidate_cache(self.path(name))
        return self.fs.exists(self.path(name))

    def glob(self, folder: str, pattern: str) -> list[str]:
        """Sorted full paths of the files ``folder/pattern`` (a fresh listing every call)."""
        if self.local:
            directory = Path(self.path(folder))
            return sorted(str(p) for p in directory.glob(pattern)) if directory.is_dir() else []
        prefix = self.path(folder)
        self.fs.invalidate_cache(prefix)  # other processes commit: never trust a cached listing
        return sorted(self.fs.glob(f"{prefix}/{pattern}"))

    def remove(self, paths: list[str]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm_file(path)

    def read_schema(self, path: str) -> pa.Schema:
        with self._reading(path):
            if self.local:
                return pq.read_schema(path)
            with self.fs.open(path, "rb") as f:
                return pq.read_schema(f)

    def read_table(self, path: str, columns: list[str] | None = None) -> pa.Table:
        with self._reading(path):
            if self.local:
                return pq.read_table(path, columns=columns)
            with self.fs.open(path, "rb") as f:
                return pq.read_table(f, columns=columns)

    @contextlib.contextmanager
    def _reading(self, path: str) -> Iterator[None]:
        """A parquet file that does not decode is reported as ``CorruptFileError`` (a file
        that vanished stays ``FileNotFoundError``)."""
        try:
            yield
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as err:
            reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
            raise CorruptFileError(path, reason, self.url) from None

    def read_tables(self, paths: list[str], columns: list[str] | None = None) -> list[pa.Table]:
        """``read_table`` of each path, in order; on object stores several at once (each read
        is a few round trips, and a resume scan reads every shard)."""
        if self.local or len(paths) < 2:
            return [self.read_table(p, columns) for p in paths]
        with ThreadPoolExecutor(REMOTE_READERS) as pool:
            return list(pool.map(lambda p: self.read_table(p, columns), paths))

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"
