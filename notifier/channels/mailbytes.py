"""An email's bytes, written as the standard library's generator writes them, but directly.

Building each notice as an `email.message.EmailMessage` under `email.policy` and flattening
it cost about 4 ms a message (every header value parsed into a tree and folded back, the
body encoded, then walked again by the generator): with 1,000 changed feeds, the largest
cost of a cycle on the daemon's own core. notifier's mail has one shape (a few headers, a
multipart/alternative of a text and an HTML part), so it is written here directly, the same
bytes the generator writes (`tests/test_mailbytes.py` holds both side by side):

- a header whose value is short, printable ASCII with nothing to encode (no `=?`, no runs
  of spaces) is written as it is; any other goes through the policy's own folding, which
  encodes it (RFC 2047) and refuses CR/LF in a value as before;
- each body is encoded as `set_content` chooses: 7bit when it is ASCII with short lines,
  else quoted-printable or base64, whichever is shorter for its first lines;
- the boundary is a random one the bodies do not contain, as the generator makes it, and a
  body line starting "From " is written ">From ", as `smtplib.send_message` wrote it.
"""

from __future__ import annotations

import binascii
import email.policy
import random
import re
import sys
from typing import TYPE_CHECKING

__all__ = ["CRLF", "POLICY", "alternative", "header", "quoted_printable"]

CRLF = b"\r\n"
_UNFOLDED = frozenset({"list-unsubscribe", "list-id"})

if TYPE_CHECKING:
    from email.message import EmailMessage

    _Base = email.policy.EmailPolicy[EmailMessage]
else:  # not subscriptable at run time
    _Base = email.policy.EmailPolicy


class _Policy(_Base):
    """The default policy, except that a long URL in a List-* header stays one line.

    The default folds a "word" longer than 78 characters into RFC 2047 encoded words, and no
    mail client reads an unsubscribe URL back out of those; RFC 5322 allows 998.
    """

    def _long(self) -> _Base:
        return email.policy.default.clone(cte_type=self.cte_type, linesep=self.linesep,
                                          max_line_length=998)

    def fold(self, name: str, value: str) -> str:
        if name.lower() in _UNFOLDED:
            return str(self._long().fold(name, value))
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _UNFOLDED:
            return bytes(self._long().fold_binary(name, value))
        return bytes(super().fold_binary(name, value))


# Headers must stay 7-bit clean: not every server announces 8BITMIME, so non-ASCII bodies are
# sent quoted-printable or base64. `default` also refuses CR/LF in header values.
POLICY = _Policy().clone(cte_type="7bit")
_WIRE = POLICY.clone(linesep="\r\n")
_WIRE_UTF8 = _WIRE.clone(utf8=True)
"""For a server that is sent SMTPUTF8 (an address that is not ASCII): headers in UTF-8."""
_MAX_LINE = POLICY.max_line_length or 78
_PLAIN_VALUE = re.compile(r"[!-~]+(?: [!-~]+)*")
"""Printable ASCII words, single spaces between: what every header kind writes unchanged."""


_AS_WRITTEN = frozenset({"subject", "date", "message-id", "in-reply-to", "references",
                         "list-id", "auto-submitted", "x-auto-response-suppress"})
"""Headers the policy writes back unchanged when their value is plain (addresses, which it
re-renders, always go through it)."""


def header(name: str, value: str, *, utf8: bool = False) -> bytes:
    """`Name: value` and its line end as the policy folds it on the wire (`utf8`: as
    `smtplib.send_message` folds it for an SMTPUTF8 transaction)."""
    if (name.lower() in _AS_WRITTEN and len(name) + 2 + len(value) <= _MAX_LINE
            and "=?" not in value and _PLAIN_VALUE.fullmatch(value)):
        return f"{name}: {value}\r\n".encode("ascii")
    wire = _WIRE_UTF8 if utf8 else _WIRE
    return bytes(wire.fold_binary(name, wire.header_store_parse(name, value)[1]))


_TEXT_HEAD = b'Content-Type: text/%s; charset="utf-8"\r\nContent-Transfer-Encoding: %s\r\n'


def _encoded(text: str) -> tuple[str, bytes]:
    """(transfer encoding, body with CRLF line ends), as `set_content(text)` chooses."""
    lines = text.encode("utf-8").splitlines()
    if max((len(line) for line in lines), default=0) <= _MAX_LINE and all(
            line.isascii() for line in lines):
        return "7bit", b"".join(line + CRLF for line in lines)
    body = b"\n".join(lines) + b"\n"
    sniff = b"\n".join(lines[:10]) + b"\n"
    sniff_qp = quoted_printable(sniff.decode("latin-1"))
    if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
        per_line = _MAX_LINE // 4 * 3
        data = "".join(binascii.b2a_base64(body[i:i + per_line]).decode("ascii")
                       for i in range(0, len(body), per_line))
        return "base64", data.replace("\n", "\r\n").encode("ascii")
    # Quoted-printable encodes line by line, so the whole body's encoding is the first ten
    # lines' (already made to choose) followed by the rest's: each line encoded once.
    encoded = sniff_qp if len(lines) <= 10 else sniff_qp + quoted_printable(
        (b"\n".join(lines[10:]) + b"\n").decode("latin-1"))
    return "quoted-printable", encoded.replace("\n", "\r\n").encode("ascii")


_QP_TABLE = [chr(byte) if 32 <= byte <= 126 or byte in (9, 10, 13) else f"={byte:02X}"
             for byte in range(256)]
"""Quoted-printable for body text, byte by byte, except "=" (escaped before: see below)."""


def quoted_printable(text: str) -> str:
    """`email.quoprimime.body_encode(text, 78)`, which `set_content` uses, for `text` made
    of bytes (as Latin-1), lines ended by "\n", the last one too.

    The same output, at a fraction of the cost of an HTML part: the stdlib escapes "=" too
    through `str.translate`, whose table then maps a character to three, and that takes
    Python's slow path from the first "=" on (an HTML part has one in its first line).
    Here "=" is escaped first, and the table maps every ASCII character to one.
    """
    width = _MAX_LINE
    out: list[str] = []
    for line in text.replace("=", "=3D").translate(_QP_TABLE).split("\n"):
        # Longer than `width`: cut pieces of width - 1 characters and a soft break "=",
        # never inside an escape (=XX).
        start = 0
        while len(line) - start > width:
            stop = start + width - 1
            if line[stop - 2] == "=":  # an escape in the last two places: it goes on
                out.append(line[start:stop - 1])
                start = stop - 2
            elif line[stop - 1] == "=":
                out.append(line[start:stop])
                start = stop - 1
            else:
                out.append(line[start:stop] + "=")
                start = stop
        rest = line[start:]
        if rest and rest[-1] in " \t":
            # Space at a line's end is lost in transit: it is escaped, or, with no room
            # for its escape, kept before a soft break (or escaped after one).
            room = width + 1 - len(rest)
            if room >= 3:
                rest = f"{rest[:-1]}={ord(rest[-1]):02X}"
            elif room == 2:
                rest += "=\n"
            else:
                rest = f"{rest[:-1]}=\n={ord(rest[-1]):02X}"
        out.append(rest)
    return "\n".join(out)


_FROM = re.compile(rb"^From ", re.MULTILINE)


def _part(subtype: str, text: str, extra: bytes = b"") -> bytes:
    cte, body = _encoded(text)
    # `smtplib.send_message` flattened with the generator's default, which quotes a line
    # starting "From " (mbox's separator) as ">From ": kept, so old and new mail read alike.
    if b"From " in body:  # (a scan of the bytes, a sixth of the regular expression's)
        body = _FROM.sub(b">From ", body)
    return _TEXT_HEAD % (subtype.encode(), cte.encode()) + extra + CRLF + body


_DIGITS = len(repr(sys.maxsize - 1))


def _boundary(text: bytes) -> str:
    """A random boundary that no line of `text` is, as `email.generator` makes one."""
    found = base = "=" * 15 + f"{random.randrange(sys.maxsize):0{_DIGITS}d}=="
    if found.encode("ascii") not in text:
        return found
    counter = 0
    while re.search(b"^--" + re.escape(found.encode()) + b"(--)?$", text, re.MULTILINE):
        found = f"{base}.{counter}"
        counter += 1
    return found


def alternative(head: bytes, text: str, html: str) -> bytes:
    """The whole message: `head` (folded header lines), then MIME-Version and a
    multipart/alternative of `text` (text/plain) and `html` (text/html), both UTF-8."""
    plain = _part("plain", text)
    rich = _part("html", html, b"MIME-Version: 1.0\r\n")
    boundary = _boundary(plain + CRLF + rich)
    mark = f"--{boundary}".encode("ascii")
    return b"".join((
        head, b"MIME-Version: 1.0\r\n",
        b'Content-Type: multipart/alternative;\r\n boundary="', boundary.encode("ascii"),
        b'"\r\n', CRLF,
        mark, CRLF, plain, CRLF, mark, CRLF, rich, CRLF, mark, b"--", CRLF))
