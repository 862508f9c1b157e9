"""The raw folder as it may safely be read: which files count, and one consistent copy of each.

- `survey_raw_folder` lists the raw files without following a symbolic link out of the raw
  folder: a link (to a file or a folder) that resolves outside it, or nowhere, is refused with
  the reason; a link to a folder is never descended into (its files inside the raw folder are
  read where they are); what is not a regular file (a pipe, a device) is refused.
- `take_snapshot` reads a file once into memory and hashes those bytes: the hash recorded is the
  hash of what was read. A file that changed while it was read raises FileChanged: it is
  skipped, not half-ingested. Changed means: size, times or inode differ before and after;
  for a file changed in the last seconds, it is empty (a writer's truncate) or a second read
  differs (after a pause when the change was within the last 250 ms).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amhs_assets.ingest.limits import FileChanged, FileRejected, IngestConfig, over_bytes

RAW_SUFFIXES = (".csv", ".csv.gz", ".parquet")
RECENT_NS = 2_000_000_000  # a file changed this recently gets a second read to confirm it
SETTLE_NS = 250_000_000  # changed this recently: the second read waits a moment first
SETTLE_S = 0.05  # that moment: a writer caught between two writes moves on
BLOCK = 1 << 20


@dataclass
class RawFolder:
    """The raw files to read (sorted by relative path) and the entries refused, with why."""

    files: list[Path] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # relative path -> reason


def _inside(target: str, root: str) -> bool:
    return target == root or target.startswith(root.rstrip(os.sep) + os.sep)


def _link_reason(path: Path, root: str) -> str | None:
    """Why a symbolic link is refused, or None for a link to a raw file inside the folder."""
    target = os.path.realpath(path)
    if not os.path.exists(target):
        return f"symbolic link to {os.readlink(path)!r}, which does not exist: refused"
    if not _inside(target, root):
        return (f"symbolic link to {target} outside the raw folder: refused, not followed; copy "
                "the file into the raw folder instead")
    if os.path.isdir(target):
        return None  # a folder inside: its files are read at their own paths
    if not os.path.isfile(target):
        return "symbolic link to something that is not a regular file: refused"
    return None


def survey_raw_folder(raw_dir: Path) -> RawFolder:
    """Every raw file under raw_dir (links inside the folder to files included, links to
    folders never descended into) and every refused entry with its reason."""
    raw_dir = Path(raw_dir)
    found = RawFolder()
    if not raw_dir.is_dir():
        return found
    root = os.path.realpath(raw_dir)
    folders = [raw_dir]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as error:
            found.refused[Path(folder).relative_to(raw_dir).as_posix()] = (
                f"folder cannot be listed: {error.strerror}")
            continue
        for entry in entries:
            path = Path(entry.path)
            rel = path.relative_to(raw_dir).as_posix()
            is_raw = entry.name.lower().endswith(RAW_SUFFIXES)
            if entry.is_symlink():
                reason = _link_reason(path, root)
                linked_folder = os.path.isdir(path)
                if reason and (is_raw or linked_folder):
                    found.refused[rel] = reason
                elif is_raw and not linked_folder:
                    found.files.append(path)
            elif entry.is_dir(follow_symlinks=False):
                folders.append(path)
            elif is_raw and entry.is_file(follow_symlinks=False):
                found.files.append(path)
            elif is_raw:
                found.refused[rel] = "not a regular file (a pipe, socket or device): refused"
    found.files.sort(key=lambda p: p.relative_to(raw_dir).as_posix())
    return found


@dataclass(frozen=True)
class Snapshot:
    """The bytes of a raw file as read once, their SHA-256, and the file's size and time."""

    data: bytes
    sha256: str
    size: int
    mtime_ns: int


def _signature(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _open_inside(path: Path, root: str) -> int:
    """A descriptor of the file, refused (FileRejected) unless what was opened is a regular file
    inside the raw folder: a link swapped in after the survey is caught here."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        proc = f"/proc/self/fd/{fd}"
        opened = os.path.realpath(proc) if os.path.exists(proc) else os.path.realpath(path)
        if not _inside(opened, root):
            raise FileRejected(f"resolves to {opened} outside the raw folder: refused, not read")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileRejected("not a regular file (a pipe, socket or device): refused")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _read_all(fd: int, limit: int) -> bytes:
    """At most `limit` bytes from a descriptor."""
    parts, total = [], 0
    while total < limit:
        block = os.read(fd, min(BLOCK, limit - total))
        if not block:
            break
        parts.append(block)
        total += len(block)
    return b"".join(parts)


def take_snapshot(path: Path, raw_dir: Path, limits: IngestConfig,
                  between: Callable[[], None] | None = None) -> Snapshot:
    """One consistent copy of a raw file: FileRejected when it is over ingest.max_file_bytes or
    not a regular file inside the raw folder, FileChanged when it changed while it was read.
    `between` runs after the first look at the file and before its bytes are read (tests change
    the file there)."""
    started = time.time_ns()
    root = os.path.realpath(raw_dir)
    try:
        fd = _open_inside(path, root)
    except FileNotFoundError:
        raise FileChanged("removed before it could be read") from None
    except OSError as error:
        raise FileRejected(f"cannot be opened: {error.strerror}") from None
    try:
        before = os.fstat(fd)
        if before.st_size > limits.max_file_bytes:
            raise over_bytes(f"{before.st_size:,} bytes", limits.max_file_bytes)
        if between is not None:
            between()
        data = _read_all(fd, limits.max_file_bytes + 1)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    try:
        now = os.stat(path)
    except FileNotFoundError:
        raise FileChanged("removed while it was read") from None
    if len(data) > limits.max_file_bytes:
        raise FileChanged(f"grew past {limits.max_file_bytes:,} bytes while it was read")
    if len(data) != before.st_size or _signature(before) != _signature(after) \
            or _signature(after) != _signature(now):
        raise FileChanged(f"changed while it was read ({before.st_size:,} bytes before, "
                          f"{len(data):,} read, {now.st_size:,} after)")
    digest = hashlib.sha256(data).hexdigest()
    if after.st_ctime_ns > started - RECENT_NS:
        # changed moments ago: perhaps caught between a writer's truncate and its writes, or
        # between two writes; a write within the clock's granularity would leave the times
        # alone. An empty file is taken for one being written; otherwise, after a pause, a
        # second read must find the same file and the same bytes.
        if not data:
            raise FileChanged("empty and changed moments ago (being written)")
        if after.st_ctime_ns > time.time_ns() - SETTLE_NS:
            time.sleep(SETTLE_S)
        again = _open_inside(path, root)
        try:
            second = hashlib.sha256(_read_all(again, limits.max_file_bytes + 1)).hexdigest()
            later = os.fstat(again)
        finally:
            os.close(again)
        if second != digest or _signature(later) != _signature(after):
            raise FileChanged("changed while it was read (two reads differ)")
    return Snapshot(data, digest, before.st_size, before.st_mtime_ns)


def stable_sha256(path: Path) -> str | None:
    """SHA-256 of a file read as a stream, or None when it changed while it was read."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        before = os.fstat(handle.fileno())
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
        after = os.fstat(handle.fileno())
    if _signature(before) != _signature(after) or _signature(after) != _signature(os.stat(path)):
        return None
    return digest.hexdigest()


def unread_token(size: int, mtime_ns: int) -> str:
    """What stands for the content hash of a file that is not read (over ingest.max_file_bytes,
    or it cannot be opened): its size and time."""
    return f"unread:{size}:{mtime_ns}"
