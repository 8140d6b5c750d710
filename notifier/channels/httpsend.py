"""What every channel that speaks HTTP shares: one request, and how its answer is read.

Webhooks, Matrix, Telegram and ntfy differ in their payloads and in where they say "slow
down" or "gone", not in how a failure turns into a retry. Keeping that here means one place
decides that a 3xx is never followed, that 408/429/5xx are retried after the server's wait,
and that no error text can carry a token out of the process: messages name the channel, and
anything quoted from the server has every secret cut out first.

It also holds the text fitting they share (`fit`, the measures): each platform counts its
limit differently (characters, UTF-16 units, bytes, bytes inside JSON), and a message cut
by the wrong measure is one the platform refuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from notifier import redact
from notifier.delivery.channel import (
    Channel,
    ChannelConfig,
    ChannelContext,
    DeliveryError,
    PermanentFailure,
    TemporaryFailure,
)
from notifier.httpheaders import parse_retry_after
from notifier.limits import MAX_RETRY_AFTER
from notifier.models import Notice

ELLIPSIS = "…"
ZWSP = "\u200b"


def utf16_len(text: str) -> int:
    """Discord and Telegram count JavaScript string length: an astral emoji counts twice."""
    return len(text.encode("utf-16-le")) // 2


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def json_len(text: str) -> int:
    """Bytes `text` takes inside a JSON body: quotes, backslashes and controls grow."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def longest_prefix(text: str, room: int, measure: Callable[[str], int]) -> str:
    """The longest prefix of `text` that measures at most `room`; a binary search, since
    every measure here grows with the prefix."""
    if measure(text) <= room:
        return text
    low, high = 0, len(text)
    while low < high:  # bounded: the interval halves each turn
        middle = (low + high + 1) // 2
        if measure(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low]


def fit(text: str, limit: int, keep: str = "", *,
        measure: Callable[[str], int] = len) -> str:
    """`text` cut to `limit` with "…", keeping `keep` (the link) whole at its end."""
    if measure(text) <= limit:
        return text
    tail = ""
    head = text
    if keep and keep in text and measure(keep) + 2 < limit:
        at = text.rfind(keep)
        head, tail = text[:at], "\n" + keep
    room = max(limit - measure(tail) - measure(ELLIPSIS), 0)
    cut = longest_prefix(head, room, measure)
    # Never end inside an HTML entity such as "&amp;" that Slack would show half of.
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:] and len(cut) - amp < 6:
        cut = cut[:amp]
    return cut.rstrip() + ELLIPSIS + tail


def break_mentions(text: str, words: Iterable[str]) -> str:
    """`@everyone` -> `@\u200beveryone`: still readable, no longer a mention."""
    for word in words:
        text = text.replace(word, word[0] + ZWSP + word[1:])
    return text


def retry_after(response: httpx.Response, now: float,
                from_body: Callable[[Any], float | None] | None = None) -> float | None:
    """Seconds to wait: Retry-After (seconds or an HTTP date), else the platform's own field
    in a JSON answer, read by `from_body`."""
    header = parse_retry_after(response.headers.get("retry-after", ""), now)
    if header is not None:
        return header
    if from_body is None:
        return None
    data = json_answer(response)
    try:
        value = from_body(data) if data is not None else None
    except (AttributeError, KeyError, TypeError):
        return None
    return None if value is None else min(max(value, 0.0), MAX_RETRY_AFTER)


def number(value: Any) -> float | None:
    """A JSON number as float; `True` is not 1 second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def json_answer(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it has none (an HTML error page from a proxy)."""
    if not response.content or "json" not in response.headers.get("content-type", "json"):
        return None
    try:
        return response.json()
    except ValueError:
        return None


@dataclass(frozen=True)
class Platform:
    """How one platform's answers are read, beyond what every HTTP API shares.

    `gone` says why the destination can never work again (a deleted webhook, a revoked
    token, a bot thrown out of its chat), or None: the channel is then disabled, so its
    messages wait for the operator instead of each failing on its own. `wait` reads the
    platform's own retry-after field from a JSON answer; `reason` its error text.
    """

    gone: Callable[[httpx.Response], str | None]
    wait: Callable[[Any], float | None] | None = None
    reason: Callable[[httpx.Response], str] | None = None


def judge(response: httpx.Response, what: str, platform: Platform, *, now: float,
          secrets: Iterable[str] = ()) -> DeliveryError | None:
    """None when the server accepted the message, else the failure to raise."""
    status = response.status_code
    what = f"{what}: HTTP {status}"
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return PermanentFailure(f"{what}: redirect not followed; put the final URL in the "
                                "configuration")
    gone = platform.gone(response)
    if gone is not None:
        return PermanentFailure(redact.text(f"{what}: {gone}", secrets), disable=True)
    if status in (408, 429) or status >= 500:
        return TemporaryFailure(what, retry_after=retry_after(response, now, platform.wait))
    text = platform.reason(response) if platform.reason else answer_text(response)
    text = redact.text(text, secrets)[:120]
    return PermanentFailure(f"{what} ({text})" if text else what)


def answer_text(response: httpx.Response) -> str:
    """The receiver's answer in one line (Slack says `invalid_payload`), if it is text."""
    text = " ".join(response.text[:200].split()) if response.content else ""
    return "" if "<" in text else text  # an HTML error page says nothing useful in one line


async def send(http: httpx.AsyncClient, method: str, url: str, *, what: str,
               content: bytes, headers: Mapping[str, str], timeout: float) -> httpx.Response:
    """One request, never following a redirect; a failure to get an answer is temporary.

    httpx's exceptions carry the request, and so the URL with its token: only the class
    name and the operating system's reason leave this function.
    """
    try:
        return await http.request(method, url, content=content, headers=dict(headers),
                                  timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException:
        raise TemporaryFailure(f"{what}: timed out") from None
    except httpx.TransportError as exc:
        raise TemporaryFailure(f"{what}: {transport_reason(exc)}") from None


def transport_reason(exc: httpx.TransportError) -> str:
    cause: BaseException | None = exc
    for _ in range(10):  # a chain of causes, bounded
        if cause is None:
            break
        if isinstance(cause, OSError) and cause.strerror:
            return f"{type(exc).__name__}: {cause.strerror}"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


def dump(data: Any) -> bytes:
    """Compact UTF-8 JSON, as every platform here accepts it."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class HttpChannel(Channel):
    """A channel that sends each notice as one HTTP request; `clock` is injectable so a
    Retry-After date can be tested without patching time."""

    uses_http = True

    def __init__(self, name: str, config: ChannelConfig, context: ChannelContext,
                 *, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(config, self.config_type):
            raise TypeError(f"channel {name}: expected a {self.kind} configuration")
        if context.http is None:
            raise TypeError(f"channel {name}: a {self.kind} channel needs an HTTP client")
        super().__init__(name, config, context)
        self.http = context.http
        self.clock = clock

    @property
    def what(self) -> str:
        """How errors name this channel: its kind and name, never its URL."""
        return f"{self.kind} {self.name}"

    def render_slot(self, slot: str, notice: Notice) -> str:
        """A broken template is fixed by editing a file; until then the message waits."""
        from notifier.render import RenderError  # with Jinja2, at the first message

        try:
            return self.render(slot, notice).strip()
        except RenderError as exc:
            raise TemporaryFailure(f"{self.what}: {exc}") from None

    def link(self, notice: Notice) -> str:
        """The entry's checked link, which a cut message keeps."""
        return str(self.context.renderer.context(notice, self.kind)["link"])

    async def request(self, method: str, url: str, body: bytes, headers: Mapping[str, str],
                      *, timeout: float, platform: Platform, secrets: Iterable[str]) -> None:
        """Send, and raise the failure the answer means; return when it was accepted."""
        response = await send(self.http, method, url, what=self.what, content=body,
                              headers=headers, timeout=timeout)
        self.observe(response)
        failure = judge(response, self.what, platform, now=self.clock(), secrets=secrets)
        if failure is not None:
            raise failure

    def observe(self, response: httpx.Response) -> None:
        """Sees every answer, accepted or not: where a kind reads rate-limit headers."""
