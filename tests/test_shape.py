"""The shape a newcomer is promised: decisions apart from I/O, and package docstrings that
name what is really there (the poll stages, the platform adapters)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import notifier
from notifier import poll, sources

ROOT = Path(notifier.__file__).parent

DECISIONS = [
    "poll/decide.py", "poll/news.py", "poll/readers.py", "gaps.py", "diff.py", "match.py",
    "schedule.py", "threads.py", "pagelinks.py", "delivery/retry.py", "delivery/pacing.py",
]
"""Modules that decide: values in, a verdict out. What their docstrings promise."""

IO_MODULES = ("asyncio", "aiohttp", "httpx", "socket", "smtplib", "subprocess", "sqlite3",
              "psycopg", "logging", "notifier.fetch", "notifier.store.db", "notifier.store.sql",
              "notifier.daemon")
CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("datetime", "now"),
               ("datetime", "utcnow"), ("random", "random")}


def _imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize("path", DECISIONS)
def test_a_decision_module_does_no_io_and_reads_no_clock(path: str) -> None:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    imported = _imports(tree)
    assert not [m for m in imported if m.split(".")[0] in IO_MODULES or m in IO_MODULES]
    for node in ast.walk(tree):
        assert not isinstance(node, ast.AsyncFunctionDef | ast.Await), \
            f"{path}:{getattr(node, 'lineno', '?')} awaits"
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id not in ("open", "print", "input"), f"{path}:{node.lineno}"
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                assert (func.value.id, func.attr) not in CLOCK_CALLS, \
                    f"{path}:{node.lineno} reads the clock; take `now` as an argument"


def test_the_poll_package_docstring_names_every_stage_module() -> None:
    """`notifier/poll/__init__.py` is where a newcomer learns the flow: every module of the
    package appears in it, so a new stage cannot be added without being placed in the flow."""
    text = poll.__doc__ or ""
    modules = sorted(p.stem for p in (ROOT / "poll").glob("*.py") if p.stem != "__init__")
    assert modules and [m for m in modules if not re.search(rf"\b{m}\b", text)] == []


def test_the_sources_package_docstring_says_where_a_new_platform_goes() -> None:
    text = sources.__doc__ or ""
    assert "notifier/sources/<name>.py" in text and "SOURCES" in text
    for adapter in sources.SOURCES:
        module = importlib.import_module(type(adapter).__module__)
        assert module.__name__ == f"notifier.sources.{adapter.name}", adapter
        assert (module.__doc__ or "").strip(), f"{module.__name__} has no docstring"
    # Every file in the folder is an adapter, or one of the two shared modules.
    files = sorted(p.stem for p in (ROOT / "sources").glob("*.py"))
    assert files == sorted(["__init__", "base", "records", *(s.name for s in sources.SOURCES)])


def _notifier_modules(tree: ast.Module) -> set[str]:
    """The notifier modules a file imports (`from notifier import x` counts as `notifier.x`)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("notifier"))
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("notifier"):
            if node.module == "notifier":
                found.update(f"notifier.{a.name}" for a in node.names)
            else:
                found.add(str(node.module))
    return found


def test_an_adapter_imports_only_the_layer_below_the_generic_algorithms() -> None:
    """An adapter importing `parse` or `discover` (which ask the adapters) would tie the
    generic algorithms to one platform again, and make a cycle."""
    for adapter in sources.SOURCES:
        path = ROOT / "sources" / f"{adapter.name}.py"
        modules = _notifier_modules(ast.parse(path.read_text(encoding="utf-8")))
        assert modules <= sources.ADAPTER_IMPORTS, (adapter.name, modules)


# -- one home per fact ---------------------------------------------------------------------


def _code_strings(tree: ast.Module) -> list[str]:
    """String constants that are code, not docstrings (of modules, classes, functions or
    attributes: every string that stands alone as a statement)."""
    docs = {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)}
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
            and isinstance(node.value, str) and id(node) not in docs]


def _homes(*needles: str) -> set[str]:
    """The modules whose code (docstrings aside) holds any of `needles`."""
    found = set()
    for path in sorted(ROOT.rglob("*.py")):
        strings = _code_strings(ast.parse(path.read_text(encoding="utf-8")))
        if any(needle in text for text in strings for needle in needles):
            found.add(path.relative_to(ROOT).as_posix())
    return found


def _assigned(name: str) -> set[str]:
    """The modules that assign `name` at their top level."""
    found = set()
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = (node.targets if isinstance(node, ast.Assign)
                       else [node.target] if isinstance(node, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def _imports_of(name: str) -> set[str]:
    return {path.relative_to(ROOT).as_posix() for path in sorted(ROOT.rglob("*.py"))
            if name in _imports(ast.parse(path.read_text(encoding="utf-8")))}


def test_each_fact_has_one_home() -> None:
    assert _assigned("MAX_RETRY_AFTER") == {"limits.py"}
    # HTTP dates (Retry-After) are read in one module, for feeds and channels alike.
    assert _imports_of("email.utils.parsedate_to_datetime") == {"httpheaders.py"}
    # WordPress's facts live in its adapter: comment keys, paged comments, the REST count.
    assert _homes("#comment-(?P", "comment-page-", "cpage", "replytocom",
                  "x-wp-total") == {"sources/wordpress.py"}
    assert _homes("showComment") == {"sources/blogger.py"}
    assert _homes("tag:blogger.com") == {"sources/blogger.py"}


def _package_imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / package).rglob("*.py")):
        found |= _notifier_modules(ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_the_two_halves_meet_only_in_the_store() -> None:
    """Polling queues, delivery drains: neither imports the other, and delivery knows no
    channel kind (the kinds build on its `Channel` base), so a new kind touches neither."""
    assert not {m for m in _package_imports("poll") if m.startswith("notifier.delivery")}
    delivery = _package_imports("delivery")
    assert not {m for m in delivery if m.startswith(("notifier.poll", "notifier.channels"))}
    assert "notifier.delivery.channel" in _package_imports("channels")


# Fragments, paths and queries of the platforms' URLs, as their own pages and APIs write them.
PLATFORM_URL_SHAPES = (
    "#comment-7", "#li-comment-7", "#comment_7", "#comment7",  # WordPress, themes, others
    "#c7000000000000000001", "?showComment=1577836800000",  # Blogger
    "/comment-page-2/", "?cpage=2", "?replytocom=7",  # WordPress's comment pages
    "/wp-json/wp/v2/comments", "?rest_route=/wp/v2/comments",  # WordPress's REST API
    "/comments/feed/", "?feed=comments-rss2", "/feeds/123/comments/default",  # comment feeds
)


def _patterns_outside_sources() -> list[tuple[str, int, str]]:
    """Every literal `re.compile` pattern in notifier outside `notifier/sources/`."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith("sources/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "compile" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "re" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                value = node.args[0].value
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                found.append((rel, node.lineno, text))
    return found


def test_platform_url_shapes_are_written_only_in_their_adapters() -> None:
    """A pattern outside the adapters that reads a platform's comment anchor, comment page,
    API route or feed path is platform knowledge in the generic code: the next platform
    would have to edit it. Each adapter says how its URLs look (`comment_anchor`,
    `comment_page_path`, ...); the generic code asks `notifier.sources`."""
    patterns = _patterns_outside_sources()
    assert len(patterns) > 20  # the scan sees the code's patterns
    offending = [(rel, line, pattern, shape) for rel, line, pattern in patterns
                 for shape in PLATFORM_URL_SHAPES if _reads_platform(pattern, shape)]
    assert offending == []


def _reads_platform(pattern: str, shape: str) -> bool:
    """Whether `pattern` reads `shape` from its marker (`#`, `?`, `/`) into its words: a
    pattern for tag names or whitespace matches a word inside it, never the marker too; one
    that reads any printable text (a header value's) reads the shape with its words
    scrambled just as far, so it knows none of them."""
    match = re.search(pattern, shape)
    if match is None or match.start() != 0 or not re.search(r"[A-Za-z]", match.group(0)):
        return False
    scrambled = re.search(pattern, re.sub(r"[A-Za-z]", "q", shape))
    return scrambled is None or scrambled.start() != 0 or scrambled.end() < match.end()


def test_the_shape_scan_catches_an_anchor_pattern() -> None:
    """The scan above is not blind: the pattern the generic code held before the adapters
    did, and each adapter's own, are caught by it."""
    former = r"#(?:(?:li-)?comment[-_]?|c)(?P<n>\d+)\Z"
    assert any(_reads_platform(former, shape) for shape in PLATFORM_URL_SHAPES)
    for adapter in sources.SOURCES:
        for rule in (adapter.comment_anchor, adapter.comment_page_path):
            if rule is not None:
                assert any(_reads_platform(rule.pattern, s) for s in PLATFORM_URL_SHAPES), \
                    (adapter.name, rule.pattern)


def test_each_adapter_reads_its_own_comment_anchors() -> None:
    """The anchors the generic code once held, now each in its adapter: the parse of a
    reply's link and of a thread element still finds the comment's number."""
    assert sources.comment_number("https://b.test/2013/10/20/p/#comment-7") == "7"
    assert sources.comment_number("https://b.test/p/#li-comment-8") == "8"
    assert sources.comment_number("https://x.blogspot.com/p.html?showComment=1#c900") == "900"
    assert sources.comment_number("https://d.test/node/1#comment_9") == "9"
    assert sources.comment_number("https://b.test/p/#section-7") == ""
    owners = {s.name for s in sources.SOURCES if s.comment_anchor is not None}
    assert {"wordpress", "blogger", "generic"} <= owners
