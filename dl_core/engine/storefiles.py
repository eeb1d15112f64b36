"""The run store's files (runstore.py): the server's own, signed, written whole.

Every folder is 0700 and every file 0600, set explicitly whatever the umask, and a folder that
belongs to another user is refused. A file begins with MAGIC and an HMAC-SHA256 of its name
and contents under the server's secret: DLLAB_RUN_STORE_KEY, else a key file made once *beside*
the root (`.<root name>.key`, 32 random bytes), never inside it, so that whoever may write the
store's folder cannot choose the key. The web processes of one server share it by sharing the
store's path. `read` checks the HMAC before anything is parsed. A file is written to a
temporary name and renamed, so a reader never sees half of it; a failed write removes its
temporary file, and the store's scan removes those a killed process left (`*.tmp*`).
"""
from __future__ import annotations

import hashlib
import hmac
import io
import os
import secrets
from functools import cached_property
from pathlib import Path

MAGIC = b"DLRUNS2\n"  # then the HMAC, then the contents
HEADER = len(MAGIC) + hashlib.sha256().digest_size


class SignedFolder:
    """Files by name (a path relative to `root`); see the module docstring."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def read(self, name: str) -> io.BytesIO:
        """The contents of the file `name` after its header, if its HMAC is this server's; else
        ValueError, nothing of it parsed (OSError if it is not there)."""
        data = (self.root / name).read_bytes()
        if not hmac.compare_digest(data[:HEADER], MAGIC + self._mac(name, memoryview(data)[HEADER:])):
            raise ValueError(f"{name} is damaged or was not written by this server")
        buf = io.BytesIO(data)  # (shares `data`: no copy of a large run)
        buf.seek(HEADER)
        return buf

    def write(self, name: str, data) -> None:
        """`data` (bytes-like) as the file `name` with its header: whole or not at all."""
        path = self.root / name
        self.folder(path.parent)
        tmp = _create(path, MAGIC + self._mac(name, data), data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def touch(self, name: str) -> None:
        """An empty file `name` (a marker: its name says it all), made with its folder if missing."""
        path = self.root / name
        for retry in (False, True):
            self.folder(path.parent)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                break
            except FileNotFoundError:  # a scan removed the folder, empty, just now
                if retry:
                    raise
        os.fchmod(fd, 0o600)
        os.close(fd)

    def folder(self, path: Path) -> None:
        """`path` and the folders above it up to the root: made if missing, this user's, 0700."""
        if path == self.root:
            path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self.folder(path.parent)
        path.mkdir(mode=0o700, exist_ok=True)
        if path.stat().st_uid != os.getuid():
            raise PermissionError(f"The run store's folder {path} belongs to another user.")
        os.chmod(path, 0o700)  # (mkdir's mode passes through the umask; an older version made it 0755)

    def name_for(self, text: str) -> str:
        """A file name for `text` that only this server's key gives (another key's file is never taken for it)."""
        return self._mac("", text.encode("utf-8", "surrogatepass")).hex()[:32]

    def _mac(self, name: str, data) -> bytes:
        mac = hmac.new(self._key, name.encode() + b"\0", hashlib.sha256)  # the name too: no file passes for another
        mac.update(data)
        return mac.digest()

    @cached_property
    def _key(self) -> bytes:
        if os.environ.get("DLLAB_RUN_STORE_KEY"):
            return os.environ["DLLAB_RUN_STORE_KEY"].encode()
        path = self.root.parent / f".{self.root.name}.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _create(path, secrets.token_bytes(32))
            try:
                os.link(tmp, path)  # whole and exclusive: processes starting together agree on the first key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        if path.stat().st_uid != os.getuid() or path.stat().st_mode & 0o077:
            raise PermissionError(f"The run store's key {path} must be this user's alone (mode 0600).")
        return path.read_bytes()


def _create(path: Path, *chunks) -> Path:
    """A new file beside `path` holding `chunks`, 0600 whatever the umask; none if writing fails."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}-{secrets.token_hex(4)}")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            for chunk in chunks:
                f.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def entries(path) -> list[os.DirEntry]:
    """A folder's entries ([] if it is not there)."""
    try:
        with os.scandir(path) as it:
            return list(it)
    except OSError:
        return []


def age(entry: os.DirEntry, now: float) -> float:
    """Seconds since `entry` last changed (0 if it has gone)."""
    try:
        return now - entry.stat().st_mtime
    except OSError:
        return 0.0


def unlink(path: str, remove=os.unlink) -> None:
    """Remove `path` if it is still there (another process may be scanning too)."""
    try:
        remove(path)
    except OSError:
        pass
