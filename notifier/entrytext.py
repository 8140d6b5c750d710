"""The field rules every parser shares: bounds, hashing, untyped-dict reading, post links.

    raw dict / JSON value -> text_of / map_of -> clip, squash -> Entry fields; sha256 -> hash

Why a module of its own: the feed parser (`parse`) and each platform adapter
(`notifier.sources.*`, which read REST JSON) must clip, hash and key entries identically, or
the same comment read twice would look like two. Adapters cannot import `parse` (it asks
them about platform rules), so what both need lives here, below both.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from notifier.errors import NotifierError
from notifier.textsafety import storable

__all__ = [
    "AUTHOR_DATE_KEY",
    "ENTRIES_CUT",
    "HASH_KEY",
    "MAX_ENTRIES",
    "MAX_FIELD_BYTES",
    "MAX_PERSON_BYTES",
    "ParseError",
    "cap_entries",
    "clip",
    "get",
    "map_of",
    "post_link",
    "sha256",
    "shared_id_keys",
    "squash",
    "text_of",
]

MAX_ENTRIES = 5_000  # a real feed holds tens; more is a mistake or an attack
MAX_FIELD_BYTES = 1024 * 1024  # per text field, UTF-8 encoded
MAX_PERSON_BYTES = 2048
"""An author's name or email element longer than this is cut before feedparser reads it:
its author-email regex is quadratic (80,000 characters cost 22 s per item)."""


ENTRIES_CUT = b"<!-- notifier: entries beyond MAX_ENTRIES were cut -->"

# An entry's or item's start tag, whatever its prefix; and the document's root element.
_ENTRY_START = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,64}:)?(?:entry|item)[\s>/]")
_ROOT = re.compile(rb"<([A-Za-z_][\w.:-]{0,128})[\s>/]")
_SMALLEST_ENTRY = len(b"<item/>")


def cap_entries(body: bytes) -> bytes:
    """The document cut before its entry number `MAX_ENTRIES + 1`, closed again, and marked
    with `ENTRIES_CUT` (an XML comment after the root, so the parser can say so).

    Done on the bytes, before they go to a parse worker, so feedparser never builds the
    rest: 100,000 entries (14.6 MB) cost it 20 s and 300 MB, 5,000 of them a twentieth.
    The root (and an RSS channel) is closed where the cut falls, so the document stays
    well-formed in the usual case. A cut document is not cut again.
    """
    if len(body) <= MAX_ENTRIES * _SMALLEST_ENTRY:
        return body
    for number, match in enumerate(_ENTRY_START.finditer(body), 1):
        if number > MAX_ENTRIES:
            cut = match.start()
            break
    else:
        return body
    root = _ROOT.search(body, 0, cut)  # the first element: `<?xml` and `<!` do not match
    name = root[1] if root is not None else b""
    closing = b"</channel></%s>" % name if name.rsplit(b":", 1)[-1] == b"rss" else \
        b"</%s>" % name if name else b""
    return body[:cut] + closing + ENTRIES_CUT


class ParseError(NotifierError):
    """The body is not a feed (or not the JSON expected); the message says what it was."""


def get(obj: object, key: str) -> object:
    """A stored value, bypassing FeedParserDict's aliases.

    Its `get("updated_parsed")` answers with the published date when there is no updated one
    (and warns), and other keys have legacy aliases; only what the document said is wanted.
    """
    if isinstance(obj, dict):
        return dict.get(obj, key)
    if isinstance(obj, Mapping):
        return obj.get(key)
    return None


def text_of(obj: object, key: str) -> str:
    """A text field, made storable (NUL and lone surrogates out: `textsafety.storable`)."""
    value = get(obj, key)
    return storable(value) if isinstance(value, str) else ""


def map_of(obj: object, key: str) -> Mapping[str, Any]:
    value = get(obj, key)
    return value if isinstance(value, Mapping) else {}


def clip(text: str, limit: int = MAX_FIELD_BYTES) -> str:
    if len(text) * 4 <= limit:  # cannot be over the limit even if every char takes 4 bytes
        return text
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore")


def squash(text: str) -> str:
    return " ".join(text.split())


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


HASH_KEY = "sha256:"
"""The key of an entry with nothing else to key it by: a digest of its content."""
AUTHOR_DATE_KEY = "author-date:"
"""The key of a comment without guid or link: a digest of its author and date."""


def shared_id_keys(key: str, published: datetime | None, content_hash: str) -> tuple[str, ...]:
    """The keys an entry is given when it shares its id with an older item of the same
    document (`parse` keeps the bare id for the oldest): the id with its date, else (or when
    that is taken too) with its content digest. Also where the store may hold it from an
    earlier poll, once the older item has left the feed and it is alone under the bare id."""
    dated = (f"{key} @{published.isoformat()}",) if published is not None else ()
    return (*dated, f"{key} @{HASH_KEY}{content_hash}")


def post_link(url: str, page_path: re.Pattern[str] | None = None,
              page_params: frozenset[str] = frozenset()) -> str:
    """A comment's link without what only locates the comment: its fragment, and the
    comment-page markers a platform names (a path suffix replaced by "/", query keys).

    Which markers there are is platform knowledge: `notifier.sources.post_link` passes
    those of every adapter; an adapter reading its own API passes its own.
    """
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.partition("#")[0]
    path = page_path.sub("/", parts.path) if page_path is not None else parts.path
    query = parts.query
    if query and page_params:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k not in page_params]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))
