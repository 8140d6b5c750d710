"""Every error notifier raises on purpose has one root, as `notifier.errors` draws it."""

from __future__ import annotations

import jinja2

from notifier.channels import UnknownChannelKind, channel_config_type
from notifier.config import ConfigError
from notifier.delivery.channel import DeliveryError, PermanentFailure, TemporaryFailure
from notifier.discover import DiscoveryError
from notifier.entrytext import ParseError
from notifier.errors import NotifierError
from notifier.fetch import TargetBlocked
from notifier.parse import parse_feed
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
