"""Every error notifier raises on purpose has one root, as `notifier.errors` draws it; what it
does not raise travels as a `Failure`, a kind and a message."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import re
import socket
from types import ModuleType

import jinja2

import notifier
from notifier import errors
from notifier.channels import UnknownChannelKind, channel_config_type
from notifier.config import ConfigError
from notifier.delivery.channel import DeliveryError, PermanentFailure, TemporaryFailure
from notifier.discover import DiscoveryError, discover
from notifier.entrytext import ParseError
from notifier.errors import NotifierError
from notifier.failures import Failure, FailureKind
from notifier.fetch import Fetcher, TargetBlocked
from notifier.parse import parse_feed
from notifier.poll.retrieve import ParsePool
from notifier.render import RenderError
from notifier.store import StoreError


def test_the_tree_drawn_in_the_errors_module_holds() -> None:
    for error in (ConfigError, StoreError, ParseError, DiscoveryError, TargetBlocked,
                  UnknownChannelKind, RenderError, DeliveryError):
        assert issubclass(error, NotifierError), error
    assert issubclass(TemporaryFailure, DeliveryError)
    assert issubclass(PermanentFailure, DeliveryError)
    assert issubclass(RenderError, jinja2.TemplateError)  # Jinja's callers still catch it
    assert issubclass(UnknownChannelKind, KeyError)


def _drawn_tree() -> dict[str, tuple[str, str]]:
    """The tree in `notifier.errors`'s docstring: name -> (parent's name, module file)."""
    drawn: dict[str, tuple[str, str]] = {}
    parents: list[str] = ["NotifierError"]
    modules: list[str] = [""]
    for line in (errors.__doc__ or "").splitlines():
        branch = re.match(r"(?P<indent>[\s│]*)[├└]── (?P<name>\w+)\s*(?P<module>[\w/.]+\.py|\w+/)?",
                          line)
        if branch is None:
            continue
        depth = len(branch["indent"]) // 4  # each level is drawn four columns deeper
        del parents[depth:], modules[depth:]
        module = branch["module"] or modules[-1]
        drawn[branch["name"]] = (parents[-1], module)
        parents.append(branch["name"])
        modules.append(module)
    return drawn


def _all_modules() -> list[ModuleType]:
    return [importlib.import_module(m.name)
            for m in pkgutil.walk_packages(notifier.__path__, "notifier.")]


def test_the_drawn_tree_is_every_real_subclass_with_its_parent_and_module() -> None:
    _all_modules()  # every subclass defined anywhere in notifier is now known
    real: dict[str, tuple[str, str]] = {}

    def walk(cls: type[BaseException]) -> None:
        for sub in cls.__subclasses__():
            if not sub.__name__.startswith("_") and sub.__module__.startswith("notifier."):
                path = sub.__module__.removeprefix("notifier.").replace(".", "/")
                real[sub.__name__] = (cls.__name__, path)
            walk(sub)

    walk(NotifierError)
    drawn = _drawn_tree()
    assert set(drawn) == set(real), "drawn but not real, or real but not drawn"
    for name, (parent, module) in drawn.items():
        real_parent, real_module = real[name]
        assert parent == real_parent, name
        assert real_module == module.removesuffix(".py").removesuffix("/") or \
            real_module.startswith(module.removesuffix("/") + "/") or \
            real_module == module.removesuffix("/") + "/__init__", (name, real_module, module)


def test_every_public_exception_of_notifier_is_under_the_root_or_named_as_outside_it() -> None:
    outside = []
    for module in _all_modules():
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (issubclass(cls, BaseException) and cls.__module__ == module.__name__
                    and not name.startswith("_") and not issubclass(cls, NotifierError)):
                outside.append(name)
    # Each exception outside the root is named, with its reason, in the errors docstring.
    assert outside and all(f".{name}`" in (errors.__doc__ or "") for name in outside), \
        outside


def test_a_caller_can_catch_notifiers_own_failures_at_the_root() -> None:
    caught: list[str] = []
    for attempt in (lambda: parse_feed(b"<html><body>not a feed</body></html>",
                                       "http://blog.test/"),
                    lambda: channel_config_type("no-such-kind")):
        try:
            attempt()
        except NotifierError as exc:
            caught.append(type(exc).__name__)
    assert caught == ["ParseError", "UnknownChannelKind"]


# -- failures as values: a kind and a message ----------------------------------------------


def test_a_body_that_is_no_feed_fails_as_a_typed_value_not_an_exception() -> None:
    pool = ParsePool(workers=1)
    try:
        result = asyncio.run(pool.parse(b"<html><body>not a feed</body></html>",
                                        "http://blog.test/", {"content-type": "text/html"}))
    finally:
        pool.shutdown()
    assert result == Failure(FailureKind.NOT_A_FEED, "not a feed: got an HTML page")
    assert result.kind.needs_a_person


def test_a_discovery_that_got_no_answer_is_not_blamed_on_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> DiscoveryError:
        async with Fetcher() as fetcher:
            try:
                await discover(fetcher, f"http://127.0.0.1:{port}/", "comments")
            except DiscoveryError as exc:
                return exc
        raise AssertionError("discovery of a closed port succeeded")

    error = asyncio.run(main())
    assert error.kind is FailureKind.NETWORK and not error.kind.needs_a_person
    assert DiscoveryError("no feed here").kind is FailureKind.DISCOVERY


def test_stored_failures_read_back_with_their_kind() -> None:
    assert Failure.stored("timeout", "timed out after 20 s") == \
        Failure(FailureKind.TIMEOUT, "timed out after 20 s")
    # Rows written before kinds were stored, or by a newer notifier with a kind unknown here.
    assert Failure.stored(None, "HTTP 500") == Failure(FailureKind.NETWORK, "HTTP 500")
    assert Failure.stored("brand-new-kind", "x") == Failure(FailureKind.NETWORK, "x")
    assert Failure.stored("http", None) is None
    assert str(Failure(FailureKind.HTTP, "HTTP 503")) == "HTTP 503"
