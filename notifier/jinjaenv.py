"""The Jinja2 half of `notifier.render`: its environments, its template loader, its error.

Kept apart so that Jinja2 is imported when the first template is needed, not at every start:
a run that finds nothing new renders nothing, and importing Jinja2 was a tenth of the CPU of
such a run's imports that were not the HTTP client, the SQL layer or the validation.
`notifier.render` imports this module on the renderer's first template.

Compiled templates are kept between processes (`TemplateCache`): compiling the three email
templates cost a `run --once` that sends mail more than a tenth of its delivery CPU, every
run, for templates that had not changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import jinja2

from notifier.errors import NotifierError
from notifier.render import _FILE, _PACKAGED, QUOTE_STYLE, _shown, quote, quote_bars


class RenderError(NotifierError, jinja2.TemplateError):
    """A template could not be loaded, compiled or rendered.

    The message names the template as the user knows it (the configured file, or the
    packaged default) and the line, because the fix is an edit to that file.
    """

    def __init__(self, template: str, message: str, lineno: int | None = None) -> None:
        where = f"{template}, line {lineno}" if lineno else template
        super().__init__(f"template {where}: {message}")
        self.template = template
        self.lineno = lineno


class _Loader(jinja2.BaseLoader):
    """Two namespaces: `packaged:<kind>/<slot>.j2` and `file:<path from base_dir>`.

    Names without a prefix (a user's `{% include "footer.j2" %}`) are files too.
    """

    def __init__(self, base_dir: Path, shown: dict[str, str]) -> None:
        self.base_dir = base_dir
        self.packaged = jinja2.PackageLoader("notifier", "templates")
        self.shown = shown
        """Each loaded file's path -> the name errors show (as configured, or "(packaged)")."""

    def get_source(self, environment: jinja2.Environment, template: str
                   ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template.startswith(_PACKAGED):
            source, filename, uptodate = self.packaged.get_source(
                environment, template.removeprefix(_PACKAGED))
            if filename:
                self.shown[filename] = _shown(template)
            return source, filename, uptodate
        path = self.base_dir / template.removeprefix(_FILE)
        try:
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise jinja2.TemplateNotFound(f"{template} ({exc})") from None
        self.shown[str(path)] = _shown(template)
        return source, str(path), lambda: True


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates on disk, one file per template and environment, in the user's cache
    folder (`$XDG_CACHE_HOME/notifier/templates`, else `~/.cache/notifier/templates`).

    A cached template is used only if it was compiled from the same source (Jinja2 compares
    a checksum of it, so an edited or newly installed file is compiled anew) by the same
    Jinja2 and Python, with the same `render.py` and `jinjaenv.py`: the checksum covers
    those too, since they hold the environment's options and the filters that compiling may
    call on constants. Each environment has its files apart (`prefix`), as the same file is
    compiled differently when autoescaped. Files are replaced atomically, so processes
    running at once never read a half-written one. The cache only saves time: a folder that
    cannot be made or written, or a file that cannot be read, means compiling as before.
    """

    def __init__(self, directory: Path, prefix: str, salt: bytes) -> None:
        super().__init__(str(directory), f"{prefix}-%s.cache")
        self.salt = salt

    def get_source_checksum(self, source: str) -> str:
        return hashlib.sha1(self.salt + source.encode("utf-8", "surrogatepass"),
                            usedforsecurity=False).hexdigest()

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable, or not what Jinja2 wrote: compile it again
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        # Read-only, full, removed meanwhile: the next run compiles it again.
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def cache_folder() -> Path | None:
    """The folder for compiled templates, made if needed; None when there is none to use.

    Compiled templates are code this process will run, so the folder must be ours and
    writable by nobody else (as Jinja2 requires of its own default folder)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    folder = root / "notifier" / "templates"
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        found = folder.stat()
    except (OSError, RuntimeError):  # RuntimeError: no home folder to be found
        return None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid() \
            or found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return folder


def _salt() -> bytes:
    """What compiled code depends on besides the template: Jinja2's version (its own mark
    in the files changes only with their format, not with what its compiler writes), the
    Python implementation, this module and `render`."""
    digest = hashlib.sha1(f"{jinja2.__version__} {sys.implementation.cache_tag}".encode(),
                          usedforsecurity=False)
    for name in ("render.py", "jinjaenv.py"):
        try:
            digest.update((Path(__file__).parent / name).read_bytes())
        except OSError:
            digest.update(name.encode() + b" unreadable")
    return digest.digest()


def environments(base_dir: Path, shown: dict[str, str],
                 cache: Path | None = None) -> dict[bool, jinja2.Environment]:
    """The environment for HTML slots (autoescaped, key True) and the one for the others;
    `shown` learns the name to show of each file they load. With `cache`, compiled templates
    are kept in that folder (`cache_folder()`) for the next process."""
    loader = _Loader(base_dir, shown)
    salt = _salt() if cache is not None else b""
    envs = {html: jinja2.Environment(
        autoescape=html, loader=loader, undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, auto_reload=False,
        bytecode_cache=(TemplateCache(cache, "html" if html else "text", salt)
                        if cache is not None else None))
        for html in (True, False)}
    for env in envs.values():
        env.filters["quote"] = quote
        env.filters["quote_bars"] = quote_bars
        env.globals["quote_style"] = QUOTE_STYLE
    return envs
