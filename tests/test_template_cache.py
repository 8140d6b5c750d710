"""Compiled templates kept between processes: the next run skips compiling, and never sees a
stale or foreign template.

Each `Renderer` here stands for a new process: it has its own Jinja2 environments, so what
it does not compile itself it can only have from the cache folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2
import pytest

from notifier.render import Renderer
from tests.test_render import EAST_SIDE_BOY, REPLY, notice

SLOTS = ("subject", "text", "html")


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache-home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home / "notifier" / "templates"


@pytest.fixture
def compiled(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the templates Jinja2 compiles from source, in order."""
    names: list[str] = []
    original = jinja2.Environment.compile

    def compile_and_count(self: jinja2.Environment, source: Any, name: str | None = None,
                          *args: Any, **kwargs: Any) -> Any:
        names.append(name or "")
        return original(self, source, name, *args, **kwargs)

    monkeypatch.setattr(jinja2.Environment, "compile", compile_and_count)
    yield names


def email(renderer: Renderer, templates: dict[str, str] | None = None) -> list[str]:
    item = notice(REPLY, EAST_SIDE_BOY)
    return [renderer.render("email", slot, item, templates or {}) for slot in SLOTS]


def test_the_next_process_renders_from_the_compiled_templates(
        cache_home: Path, compiled: list[str], tmp_path: Path) -> None:
    expected = email(Renderer(tmp_path, keep_compiled=False))
    assert not cache_home.exists()
    compiled.clear()
    assert email(Renderer(tmp_path)) == expected
    assert len(compiled) == 3
    assert len(list(cache_home.glob("*.cache"))) == 3
    assert (cache_home.stat().st_mode & 0o777) == 0o700  # compiled code: nobody else's
    compiled.clear()
    assert email(Renderer(tmp_path)) == expected
    assert compiled == []


def test_another_jinja2_compiles_anew(cache_home: Path, compiled: list[str],
                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgraded Jinja2 may write other code for the same template (and its own mark in
    the cache files changes only with their format)."""
    expected = email(Renderer(tmp_path))
    monkeypatch.setattr(jinja2, "__version__", "3.99.0")
    compiled.clear()
    assert email(Renderer(tmp_path)) == expected
    assert len(compiled) == 3


def test_an_edited_template_is_compiled_anew(cache_home: Path, compiled: list[str],
                                             tmp_path: Path) -> None:
    file = tmp_path / "mine.j2"
    file.write_text("first: {{ author }}", encoding="utf-8")
    stamp = file.stat()
    assert email(Renderer(tmp_path), {"text": "mine.j2"})[1] == "first: southernfriedbolshevik"
    # Same length, same modification time: only the content tells the versions apart.
    file.write_text("other: {{ author }}", encoding="utf-8")
    os.utime(file, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    compiled.clear()
    assert email(Renderer(tmp_path), {"text": "mine.j2"})[1] == "other: southernfriedbolshevik"
    assert compiled == ["file:mine.j2"]


def test_one_file_as_html_and_as_text_is_cached_apart(cache_home: Path,
                                                      tmp_path: Path) -> None:
    (tmp_path / "both.j2").write_text("{{ author }}", encoding="utf-8")
    item = notice(replace(EAST_SIDE_BOY, author="<b>Eve</b> & co"))
    for _ in range(2):  # the second renderer reads both from the cache
        renderer = Renderer(tmp_path)
        assert renderer.render("email", "text", item, {"text": "both.j2"}) == "<b>Eve</b> & co"
        assert renderer.render("email", "html", item, {"html": "both.j2"}) == \
            "&lt;b&gt;Eve&lt;/b&gt; &amp; co"


def test_unreadable_cache_files_are_compiled_again_and_replaced(
        cache_home: Path, compiled: list[str], tmp_path: Path) -> None:
    expected = email(Renderer(tmp_path))
    for index, file in enumerate(sorted(cache_home.glob("*.cache"))):
        # Cut short, garbage, and a file that is no template's code at all.
        file.write_bytes([file.read_bytes()[:40], b"\x00garbage" * 9, b""][index])
    compiled.clear()
    assert email(Renderer(tmp_path)) == expected
    assert len(compiled) == 3
    compiled.clear()
    assert email(Renderer(tmp_path)) == expected
    assert compiled == []


def test_a_cache_folder_that_cannot_be_used_only_costs_time(
        cache_home: Path, compiled: list[str], tmp_path: Path) -> None:
    expected = email(Renderer(tmp_path, keep_compiled=False))
    # Writable by others: what it holds could be anyone's code, so it is neither read
    # nor written.
    cache_home.mkdir(parents=True)
    cache_home.chmod(0o777)
    assert email(Renderer(tmp_path)) == expected
    assert list(cache_home.iterdir()) == []
    # Not a folder at all.
    cache_home.rmdir()
    cache_home.write_text("not a folder", encoding="utf-8")
    assert email(Renderer(tmp_path)) == expected
    # Removed while the process runs: the templates compiled after that are not kept.
    cache_home.unlink()
    renderer = Renderer(tmp_path)
    first = renderer.render("email", "subject", notice(REPLY, EAST_SIDE_BOY), {})
    for file in cache_home.iterdir():
        file.unlink()
    cache_home.rmdir()
    assert [first, *email(renderer)[1:]] == expected
    assert not cache_home.exists()
