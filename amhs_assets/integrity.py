"""What was written is what is read: SHA-256 manifests of model folders, HMAC seals of stored
values.

- A model folder gets ``checksums.json`` (the SHA-256 of every other file in it) when it is
  saved; the manifest's own SHA-256 is recorded outside the folder (the registered version's
  ``artifact_sha256`` tag). `verify_folder` checks the manifest against that digest and every
  file against the manifest, and refuses files the manifest does not list.
- A stored value (a pickle of the IO manager) gets a ``<file>.hmac`` beside it: HMAC-SHA256 of
  its bytes, keyed by a secret (``AMHS_STORAGE_KEY``, or a key file created with mode 0600), so
  a value planted with a recomputed checksum is refused too.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

CHECKSUMS = "checksums.json"
SEAL_SUFFIX = ".hmac"
ENV_STORAGE_KEY = "AMHS_STORAGE_KEY"
KEY_FILE = ".storage_key"
CHUNK = 1 << 20


class IntegrityError(RuntimeError):
    """A stored file is not the one that was written; the message names it."""


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Every file under folder (relative POSIX paths, sorted), the manifest excepted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.is_file() and p.relative_to(folder).as_posix() != CHECKSUMS)


def write_checksums(folder: Path) -> str:
    """Write folder/checksums.json ({file: sha256} of every other file); return its SHA-256."""
    folder = Path(folder)
    manifest = {"algorithm": "sha256",
                "files": {name: sha256_file(folder / name) for name in _files(folder)}}
    (folder / CHECKSUMS).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return sha256_file(folder / CHECKSUMS)


def verify_folder(folder: Path, expected: str | None, what: str) -> None:
    """Refuse (IntegrityError) unless checksums.json has the SHA-256 `expected` (recorded when
    the folder was saved) and every file matches it; `what` names the folder in messages."""
    folder = Path(folder)
    manifest_path = folder / CHECKSUMS
    if not expected:
        raise IntegrityError(f"{what} records no checksum of its files, so they cannot be "
                             "verified: register it again with this version of amhs_assets")
    if not manifest_path.is_file():
        raise IntegrityError(f"{what}: {CHECKSUMS} is missing from {folder}; the files cannot "
                             "be verified")
    if not hmac.compare_digest(sha256_file(manifest_path), expected):
        raise IntegrityError(f"{what}: {CHECKSUMS} changed since it was written "
                             "(its SHA-256 is not the recorded one)")
    listed = json.loads(manifest_path.read_text())["files"]
    present = _files(folder)
    extra = sorted(set(present) - set(listed))
    if extra:
        raise IntegrityError(f"{what}: file(s) not written with the model: {', '.join(extra)}")
    for name, digest in sorted(listed.items()):
        if name not in present:
            raise IntegrityError(f"{what}: {name} is missing")
        if not hmac.compare_digest(sha256_file(folder / name), digest):
            raise IntegrityError(f"{what}: {name} changed since it was written "
                                 "(its SHA-256 does not match checksums.json)")


# --- stored values: HMAC seals ------------------------------------------------------------------
def storage_key(folder: Path, env: dict[str, str] | None = None) -> bytes:
    """The secret of the value seals: $AMHS_STORAGE_KEY, else folder/.storage_key (created once,
    mode 0600, by whichever process comes first)."""
    env = os.environ if env is None else env
    if env.get(ENV_STORAGE_KEY):
        return env[ENV_STORAGE_KEY].encode()
    path = Path(folder) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):  # another process made it first: use that
            os.link(draft, path)  # atomic: the key file appears complete or not at all
        draft.unlink()
    return path.read_text().strip().encode()


def seal_path(path: Path) -> Path:
    """Where the seal of a stored value lives: beside it, with .hmac appended."""
    return Path(path).with_name(Path(path).name + SEAL_SUFFIX)


def _mac(data: bytes, key: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def seal(path: Path, key: bytes) -> None:
    """Write the HMAC-SHA256 of a stored value's bytes beside it."""
    seal_path(path).write_text(_mac(Path(path).read_bytes(), key))


def read_sealed(path: Path, key: bytes, what: str) -> bytes:
    """A stored value's bytes, read once and checked against its seal (IntegrityError if the
    seal is missing or does not match: changed, corrupted or planted since it was written)."""
    path = Path(path)
    data = path.read_bytes()
    mark = seal_path(path)
    if not mark.is_file():
        raise IntegrityError(f"{what}: stored value has no seal ({mark.name} is missing), so "
                             f"it cannot be trusted: {path}; materialize it again")
    if not hmac.compare_digest(mark.read_text().strip(), _mac(data, key)):
        raise IntegrityError(f"{what}: stored value changed since it was written: {path}; "
                             "materialize it again (or check AMHS_STORAGE_KEY is the key it "
                             "was written with)")
    return data
