"""The database under the store: the standard library's sqlite3, or psycopg for PostgreSQL.

Why the store writes its SQL out instead of building it with a query library: a
`run --once` over 1,000 unchanged feeds lasts about half a second, and importing SQLAlchemy
Core took a fifth of it (100 ms, before the first feed was asked), and every statement and
row of the daemon's store thread went through it. The two databases differ in few places,
each named once: the type of a generated id (`schema`), and here row locks (`FOR UPDATE
... SKIP LOCKED`, which SQLite has no syntax for), how a list of ids travels as one
parameter, and the driver's placeholders. The store writes `:name` (and `?`) placeholders
as sqlite3 takes them; for psycopg they are rewritten once per statement text.

The pool keeps a few connections open between transactions (opening a PostgreSQL
connection costs a round trip and a process on the server). A PostgreSQL connection is
pinged as it leaves the pool, so one the server dropped while it sat idle (a restart, a
failover) is replaced instead of failing the next transaction.

Driver errors are the driver's own (`sqlite3.Error`, `psycopg.Error`); `operational`
tells the ones that mean "the database cannot be used right now" (disk full, read-only,
server gone) from the rest.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import sqlite3
import sys
import threading
import urllib.parse
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from notifier import redact
from notifier.store.records import StoreError

__all__ = ["CHUNK", "Connection", "Database", "Result", "chunks", "listed", "operational",
           "reason", "sqlite_target", "url_problem"]

_POOL_SIZE = 5
"""Connections kept open between transactions; more may be open at once."""


@functools.lru_cache(maxsize=256)
def _row_class(names: tuple[str, ...]) -> Any:
    """A named tuple class for rows with these column names (read by name or position)."""
    return namedtuple("Row", names, rename=True)


class Result:
    """What a statement returned, read at once: rows, or how many rows it changed."""

    __slots__ = ("_names", "_rows", "rowcount")

    def __init__(self, cursor: Any) -> None:
        self.rowcount: int = cursor.rowcount
        description = cursor.description
        if description is None:
            self._rows: list[tuple[Any, ...]] = []
            self._names: tuple[str, ...] = ()
        else:
            self._rows = cursor.fetchall()
            self._names = tuple(column[0] for column in description)

    def keys(self) -> tuple[str, ...]:
        return self._names

    def tuples(self) -> list[tuple[Any, ...]]:
        """The rows as the driver gave them: the cheapest read, by position."""
        return self._rows

    def all(self) -> list[Any]:
        """The rows, each readable by column name (`row.url`) and by position."""
        if not self._rows:
            return []
        make = _row_class(self._names)._make
        return [make(row) for row in self._rows]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.all())

    def first(self) -> Any:
        return _row_class(self._names)._make(self._rows[0]) if self._rows else None

    def scalar(self) -> Any:
        """The first column of the first row; None when there is no row."""
        return self._rows[0][0] if self._rows else None

    def scalars(self) -> list[Any]:
        """The first column of every row."""
        return [row[0] for row in self._rows]


_PLACEHOLDER = re.compile(
    r"(?P<quoted>[Ee]'(?:[^'\\]|''|\\.)*'|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/"
    r"|\$\$.*?\$\$)|::|:(?P<name>[A-Za-z_]\w*)|\?|%", re.DOTALL)


@functools.lru_cache(maxsize=512)
def _pyformat(sql: str) -> str:
    """`sql` with sqlite3's placeholders (`:name`, `?`) written as psycopg's, and every
    other `%` doubled (psycopg reads a lone one as a placeholder, in a literal too).
    Literals, quoted names, comments and `$$` bodies hold no placeholder."""
    def one(match: re.Match[str]) -> str:
        if match.group("quoted") is not None:
            return match.group("quoted").replace("%", "%%")
        if match.group("name") is not None:
            return f"%({match.group('name')})s"
        text = match.group(0)
        return {"?": "%s", "%": "%%"}.get(text, text)  # `::` (a cast) stays
    return _PLACEHOLDER.sub(one, sql)


class Connection:
    """One connection inside a transaction (`Database.begin`) or a read (`connect`)."""

    __slots__ = ("_pg", "_raw", "dialect")

    def __init__(self, raw: Any, dialect: str) -> None:
        self._raw = raw
        self.dialect = dialect
        self._pg = dialect == "postgresql"

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None
                ) -> Result:
        """`sql` with `params` bound to its placeholders; without `params`, `sql` goes to
        the database as it is (a `%` or `:` in it is no placeholder)."""
        cursor = self._raw.cursor()
        try:
            if params is None:
                cursor.execute(sql)
            else:
                cursor.execute(_pyformat(sql) if self._pg else sql, params)
            return Result(cursor)
        finally:
            cursor.close()

    def execute_many(self, sql: str,
                     rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]]) -> int:
        """`sql` once per row of parameters; how many rows it changed in all."""
        if not rows:
            return 0
        if self._pg:
            sql = _pyformat(sql)
        cursor = self._raw.cursor()
        try:
            cursor.executemany(sql, rows)
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def lock_for_writing(self) -> None:
        """On SQLite, take the database's write lock now, before a read the write depends
        on. PostgreSQL locks the rows read (`for_update`); SQLite has no row locks, and its
        driver begins a transaction only at the first write, so what was read first (a
        lease's token, which rows are unclaimed) could be changed by another process
        meanwhile, unseen: a node that lost its lease wrote its poll anyway."""
        if not self._pg and not self._raw.in_transaction:
            self._raw.execute("BEGIN IMMEDIATE")

    # --- where the dialects differ -------------------------------------------------------

    def for_update(self, of: str | None = None, skip_locked: bool = False) -> str:
        """The row-lock clause of a SELECT: PostgreSQL's; SQLite has none (`lock_for_writing`
        takes its one lock)."""
        if not self._pg:
            return ""
        return (" FOR UPDATE" + (f" OF {of}" if of else "")
                + (" SKIP LOCKED" if skip_locked else ""))

    def among(self, column: str, name: str, values: Sequence[Any]) -> tuple[str, Any]:
        """A condition that `column` is one of `values`, with one parameter `name` however
        many they are (a statement text that does not change with their count is prepared
        once), and that parameter's value."""
        if self._pg:
            return f"{column} = ANY(:{name})", list(values)
        return f"{column} IN (SELECT value FROM json_each(:{name}))", json.dumps(list(values))


CHUNK = 500
"""Values of a list sent in one statement at most (SQLite takes 32,766 parameters,
PostgreSQL 65,535): a longer list of ids or keys is read or written in pieces (`chunks`)."""


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def listed(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """`(:name_0, :name_1, ...)` for an IN list and its parameters: `values` must not be
    empty (an empty IN list is not SQL)."""
    names = [f"{name}_{i}" for i in range(len(values))]
    return "(" + ", ".join(":" + n for n in names) + ")", dict(zip(names, values, strict=True))


def reason(exc: BaseException) -> str:
    """A database error's own message, its first line only (psycopg adds lines of
    context): what a log line or a feed's last error shows."""
    return (str(exc).strip().splitlines() or ["unknown"])[0][:300]


def operational(exc: BaseException) -> bool:
    """Whether a driver error says the database cannot be used right now (disk full, a
    read-only file, the server gone), not that a statement is wrong."""
    if isinstance(exc, sqlite3.OperationalError):
        return True
    psycopg = sys.modules.get("psycopg")  # never imported for a SQLite state
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


class Database:
    """A state URL's database: `sqlite:///path` (the embedded default) or
    `postgresql://` (`postgresql+psycopg://`, as SQLAlchemy names it, is taken too)."""

    def __init__(self, url: str, node: str | None = None, lease: float | None = None
                 ) -> None:
        """`node` names the connections (PostgreSQL's `application_name`); with `lease`,
        PostgreSQL ends a session left idle inside a transaction for that long."""
        self.url = url
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._generation = 0  # moves at `dispose`: a connection out then is not kept
        self._shared: Any = None  # an in-memory SQLite database has one connection,
        self._shared_lock = threading.RLock()  # used by one thread at a time
        problem = url_problem(url)
        if problem is not None:
            raise StoreError(f"cannot use state {redact.url(url)}: {problem}")
        target = sqlite_target(url)
        if target is not None:
            self.dialect = "sqlite"
            self._target = target
            self._timeout = float(dict(urllib.parse.parse_qsl(url.partition("?")[2])).get(
                "timeout", 30.0))
            self._memory = self._target == ":memory:"
            self.Error: type[Exception] = sqlite3.Error
            self.DatabaseError: type[Exception] = sqlite3.DatabaseError
            self.IntegrityError: type[Exception] = sqlite3.IntegrityError
            return
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                f"cannot use state {redact.url(url)}: PostgreSQL needs the psycopg driver; "
                "install notifier[postgres] (pip install 'notifier[postgres]')") from exc
        self.dialect = "postgresql"
        self._memory = False
        self._target = "postgresql://" + url.partition("://")[2]
        self._node = node
        self._lease = lease
        self.Error = psycopg.Error
        self.DatabaseError = psycopg.DatabaseError
        self.IntegrityError = psycopg.IntegrityError

    # --- connections ---------------------------------------------------------------------

    def _open(self) -> Any:
        if self.dialect == "sqlite":
            raw = sqlite3.connect(self._target, timeout=self._timeout, check_same_thread=False)
            try:
                raw.execute("PRAGMA journal_mode=WAL")
                raw.execute("PRAGMA synchronous=NORMAL")
                raw.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                raw.close()
                raise
            return raw
        import psycopg

        pg = (psycopg.connect(self._target, application_name=self._node) if self._node
              else psycopg.connect(self._target))
        if self._lease is not None:
            pg.execute(f"SET idle_in_transaction_session_timeout = {int(self._lease * 1000)}")
            pg.commit()
        return pg

    def _checkout(self) -> tuple[Any, int]:
        """A connection, and the pool's generation it belongs to."""
        if self._memory:
            self._shared_lock.acquire()
            try:
                if self._shared is None:
                    self._shared = self._open()
            except BaseException:
                self._shared_lock.release()
                raise
            return self._shared, self._generation
        while True:
            with self._lock:
                raw = self._idle.pop() if self._idle else None
                generation = self._generation
            if raw is None:
                return self._open(), generation
            if self.dialect == "sqlite":
                return raw, generation
            try:  # the server may have dropped it while it sat in the pool
                raw.execute("SELECT 1")
                return raw, generation
            except self.Error:
                _close_quietly(raw)

    def _checkin(self, raw: Any, generation: int, usable: bool) -> None:
        """Keep `raw` for the next transaction, unless it failed to end its own or the
        pool was disposed of while it was out."""
        if self._memory:
            self._shared_lock.release()
            return
        with self._lock:
            if usable and generation == self._generation and len(self._idle) < _POOL_SIZE:
                self._idle.append(raw)
                return
        _close_quietly(raw)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back when it raises."""
        raw, generation = self._checkout()
        ok = False
        try:
            yield Connection(raw, self.dialect)
            raw.commit()
            ok = True
        finally:
            self._checkin(raw, generation, ok or _rollback(raw))

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reads; whatever it began is rolled back at the end."""
        raw, generation = self._checkout()
        try:
            yield Connection(raw, self.dialect)
        finally:
            self._checkin(raw, generation, _rollback(raw))

    def dispose(self) -> None:
        """Close the connections kept open; the next transaction opens a new one."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        with self._shared_lock:
            shared, self._shared = self._shared, None
        for raw in idle:
            _close_quietly(raw)
        if shared is not None:
            _close_quietly(shared)


def _rollback(raw: Any) -> bool:
    """Roll back what `raw` began; False when that failed too (the connection is gone)."""
    try:
        raw.rollback()
        return True
    except Exception:
        return False


def _close_quietly(raw: Any) -> None:
    with contextlib.suppress(Exception):
        raw.close()


_SQLITE = ("sqlite", "sqlite+pysqlite")
_POSTGRESQL = ("postgresql", "postgresql+psycopg")


def url_problem(url: str) -> str | None:
    """What is wrong with a state URL, in words that do not repeat it (it may hold a
    password); None when the store can open it. The configuration's check asks the same,
    so that `notifier check` refuses what the store would refuse at the daemon's start."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in (*_SQLITE, *_POSTGRESQL):
        return "expected sqlite:///FILE or postgresql://user:password@host/db"
    if scheme in _POSTGRESQL:
        return None
    path, _, query = rest.partition("?")
    if path not in ("", "/", "/:memory:") and not path.startswith("/"):
        return "a SQLite state URL is sqlite:///FILE (three slashes, then the path)"
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        try:
            if name == "timeout" and float(value) >= 0:
                continue
        except ValueError:
            pass
        return (f"unknown option {name}={value!r}; a SQLite state URL takes only "
                "?timeout=SECONDS")
    return None


def sqlite_target(url: str) -> str | None:
    """The file of a SQLite state URL (`sqlite:///relative/path`, `sqlite:////abs/path`,
    escapes such as `%20` decoded), `:memory:` for `sqlite://`; None for another database.
    The URL may say `?timeout=SECONDS` (how long to wait for another process's write lock);
    any other option is refused rather than ignored (`url_problem`)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SQLITE:
        return None
    problem = url_problem(url)
    if problem is not None:
        raise StoreError(f"cannot use state {redact.url(url)}: {problem}")
    path = rest.partition("?")[0]
    if path in ("", "/", "/:memory:"):
        return ":memory:"
    return urllib.parse.unquote(path[1:])
