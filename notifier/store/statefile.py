"""The SQLite state as a file: one daemon per file, never silently replaced, copied live.

- **One writer.** Two daemons on one SQLite state each send what the other sends (the second
  used to release the first's delivery claims at start: 26 of 27 webhooks went twice). `run`
  (daemon and `--once`) holds an exclusive lock on `<state>.lock` for its life; a second one
  exits 2 naming the first one's pid. Read-only commands (`status`, `check`) take no lock.
  The lock is the kernel's (flock), so a killed daemon never leaves a stale one behind.
- **Never silently lost.** A missing state is created with a WARNING that says what that
  means (every subscription starts with a baseline); so is a zero-byte one (what a full disk
  or a bad copy leaves), which is the one case that used to start afresh without a word. A
  file that is not a SQLite database stops the run (exit 2) and is left as it is.
- **Backup.** `notifier backup` copies the state with SQLite's online backup, consistent
  while the daemon writes.

PostgreSQL states need none of this here: the server does it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from notifier.store.db import operational, reason, sqlite_target
from notifier.store.records import StoreError

log = logging.getLogger("notifier")

__all__ = ["backup", "folder_problem", "hold_state", "not_created", "sqlite_path",
           "unwritable"]

_SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///...` state URL; None for any other database, one in
    memory, or a URL the store refuses (it says why when it opens it)."""
    try:
        target = sqlite_target(url)
    except StoreError:
        return None
    return None if target in (None, ":memory:") else Path(target)


def folder_problem(path: Path) -> str | None:
    """Why the state file `path` cannot be created or opened because of its folder (what
    the person must do: create the folder or correct `state:`); None when the folder is there.
    """
    folder = path.parent
    if folder.is_dir():
        return None
    what = "is not a folder" if folder.exists() else "does not exist"
    return (f"state {path}: its folder {folder} {what}; create it (mkdir -p {folder}) or "
            "correct `state:` in the configuration")


def not_created(url: str) -> Path | None:
    """The file of a SQLite state that does not exist yet, for the commands that only read
    or amend a state (`status`, `retry`, `reload`, `export`): they must not create it, or
    the first `run` would no longer say that a new state starts every subscription with a
    baseline (a mistyped `state:` would go unnoticed). Raises StoreError when its folder is
    missing. None for a state that exists, and for PostgreSQL."""
    path = sqlite_path(url)
    if path is None or path.exists():
        return None
    problem = folder_problem(path)
    if problem is not None:
        raise StoreError(problem)
    return path


def check_file(path: Path) -> None:
    """Warn about a state about to be created; refuse one that is not SQLite, or whose
    folder is missing (no state was lost then: there was never one there)."""
    problem = folder_problem(path)
    if problem is not None:
        raise StoreError(problem)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        log.warning("state %s does not exist: creating a new, empty state. Every "
                    "subscription starts with a baseline: nothing published before now is "
                    "reported. If you had a state, stop and restore it from your backup.", path)
        return
    except OSError as exc:
        raise StoreError(f"cannot open state {path}: {exc.strerror or exc}") from exc
    if size == 0:
        log.warning("state %s is empty (0 bytes; a full disk or an interrupted copy leaves "
                    "this): a new, empty state is created in it, and every subscription "
                    "starts with a baseline. If you had a state, stop and restore it from "
                    "your backup.", path)
        return
    try:
        with path.open("rb") as stream:
            head = stream.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise StoreError(f"cannot read state {path}: {exc.strerror or exc}") from exc
    if head != _SQLITE_MAGIC:
        raise StoreError(f"state {path} is not a SQLite database ({size:,} bytes that do not "
                         "start like one): restore it from a backup, or move it away to start "
                         "an empty state; notifier never overwrites it")


@contextlib.contextmanager
def hold_state(url: str) -> Iterator[None]:
    """While inside, this process is the one `run` of the SQLite state at `url`."""
    path = sqlite_path(url)
    if path is None:
        yield
        return
    check_file(path)
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot create the lock {lock_path} beside the state: "
                         f"{exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise StoreError(
                f"state {path} is in use by another notifier (pid {holder}); two would send "
                "everything twice. Stop that one first, or give this one a state of its own "
                "(`status` and `check` work beside it)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def unwritable(exc: BaseException) -> str | None:
    """The database's reason when `exc` says the state cannot be used right now (disk full,
    read-only file, server gone), else None: a condition to wait out, not a bug."""
    if operational(exc):
        return reason(exc)
    return None


def backup(url: str, dest: Path) -> int:
    """Copy the SQLite state at `url` to `dest` with SQLite's online backup; its size."""
    path = sqlite_path(url)
    if path is None:
        raise StoreError("`notifier backup` copies SQLite states; back a PostgreSQL state up "
                         "with pg_dump")
    check_file(path)
    if not path.exists():
        raise StoreError(f"state {path} does not exist: nothing to back up")
    if dest.exists() and dest.stat().st_size > 0:
        raise StoreError(f"{dest} exists; give a new file name (a backup never overwrites)")
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            target = sqlite3.connect(dest)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        with contextlib.suppress(OSError):
            dest.unlink()
        raise StoreError(f"backup of {path} to {dest} failed: {exc}") from exc
    return dest.stat().st_size
