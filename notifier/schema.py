"""Building blocks shared by every part of the configuration schema.

They live apart from `config` so that channel kinds can declare their own settings without
importing the loader, and the loader can collect them from the channel registry.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from notifier import redact

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)")
_SPACE = re.compile(r"\s")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never silently disable a setting."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def parse_duration(value: object) -> float:
    """Seconds from `90`, `45s`, `10m`, `1h30m`, `3d`; the unit-less number is seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 2h or 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if not text or pos != len(text):
            raise ValueError(
                f"{value!r} is not a duration: write a number with a unit, such as 30s, 10m, "
                "2h, 1d or 1h30m"
            )
    else:
        raise ValueError("expected a duration such as 30s, 10m, 2h or 1d")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from `500000`, `512KiB`, `15MiB`, `1GB`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError("a size must be greater than zero")
        return value
    if isinstance(value, str):
        match = re.fullmatch(r"\s*(\d+)\s*([kmg]i?b|b)?\s*", value, re.IGNORECASE)
        if match:
            unit = (match.group(2) or "b").lower()
            factor = {"b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9,
                      "kib": 1024, "mib": 1024**2, "gib": 1024**3}[unit]
            return int(match.group(1)) * factor
    raise ValueError(f"{value!r} is not a size: write bytes or a number with KiB, MiB or GiB")


def check_http_url(value: object) -> str:
    """An absolute http(s) URL with a host; anything else cannot be fetched or posted to."""
    if not isinstance(value, str):
        raise ValueError("expected a URL such as https://blog.example.org/")
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"{redact.destination(text)!r} is not an http:// or https:// URL with a host name"
        )
    if _SPACE.search(text):
        raise ValueError("a URL cannot contain spaces")
    return text


def _one_word(value: str) -> str:
    """A token travels in a header or a URL: a space, a line break or a NUL in it is a
    copy-and-paste slip that the server would refuse on every message."""
    if any(ch.isspace() or ch == "\0" for ch in value):
        raise ValueError("a token cannot contain spaces or line breaks; copy it again")
    return value


def _string_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
HttpUrl = Annotated[str, BeforeValidator(check_http_url)]
Token = Annotated[str, AfterValidator(_one_word)]
"""A credential sent in a header or a URL (`access_token`, `token`)."""
StrList = Annotated[list[str], BeforeValidator(_string_list)]
"""A list of strings that also accepts one bare string."""


EMAIL = re.compile(r"[^@\s]+@(?:[^@\s]+\.[^@\s]+|localhost\.?|\[[^@\s\]]+\])",
                   re.IGNORECASE)
"""An address, not a name: "@bob" and "Bob @ home" are names (`replies_to`, checked by the
config and matched by `match`; email channels' `from` and `to`). A dotless domain is almost
always a typo ("ann@gmailcom"), except the local machine's own mail (`root@localhost`) and an
address literal (`ann@[192.0.2.1]`)."""


def normalise_name(name: str) -> str:
    """Names compare case- and space-insensitively: 'East  Side boy' is 'east side boy'."""
    return " ".join(name.split()).casefold()
