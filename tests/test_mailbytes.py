"""The email bytes notifier writes directly are the bytes the standard library would write.

`mailbytes` replaces building an `EmailMessage` and flattening it (the cost of a changed feed
on the daemon's core); the reference here is that way of building, as the email channel did
it, flattened as `smtplib.send_message` flattens it. Same random boundary, same bytes.
"""

from __future__ import annotations

import io
import random
from email import quoprimime
from email.generator import BytesGenerator
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.channels.mailbytes import POLICY, alternative, header, quoted_printable

HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
           "List-Id", "Auto-Submitted", "X-Auto-Response-Suppress", "List-Unsubscribe",
           "List-Unsubscribe-Post")


def reference(headers: list[tuple[str, str]], text: str, html: str, seed: int) -> bytes:
    msg = EmailMessage(policy=POLICY)
    for name, value in headers:
        msg[name] = value
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    out = io.BytesIO()
    random.seed(seed)
    BytesGenerator(out).flatten(msg, linesep="\r\n")  # as smtplib.send_message does
    return out.getvalue()


def direct(headers: list[tuple[str, str]], text: str, html: str, seed: int) -> bytes:
    random.seed(seed)
    return alternative(b"".join(header(n, v) for n, v in headers), text, html)


def usual(subject: str, **changes: str) -> list[tuple[str, str]]:
    values = {
        "From": "Thread notifier <notifier@example.org>", "To": "reader@example.org",
        "Subject": subject, "Date": "Thu, 03 Dec 2026 03:29:26 +0000",
        "Message-ID": "<n0000000000000000000000000000005@example.org>",
        "In-Reply-To": "<thread-e7d7c71ddd1635ab1f6cdecb@example.org>",
        "References": "<thread-e7d7c71ddd1635ab1f6cdecb@example.org>",
        "List-Id": "<the-thread.notifier.example.org>", "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All", **changes}
    return list(values.items())


LONG_URL = "https://unsubscribe.example.org/" + "x" * 120
CASES = {
    "ascii": (usual('New comment by Markup Tester on "Why Defend Stalin?"'),
              "Hello.\n\n> quoted\nRead it: http://blog.test/a/#comment-5\n",
              "<p>Hello &amp; <a href=\"http://blog.test/\">link</a></p>\n"),
    "non-ascii subject and body (quoted-printable)": (
        usual("Nouveau commentaire de Zoë sur « Pourquoi ? »"),
        "Zoë a écrit :\n\nC’est très bien.\n" * 3, "<p>Zoë a écrit&nbsp;: « très »</p>\n"),
    "mostly non-ascii (base64)": (usual("Новый комментарий"), "Комментарий на русском.\n" * 30,
                                  "<p>" + "日本語のコメント。" * 40 + "</p>\n"),
    "long lines": (usual("x " * 60), "word " * 100 + "\n", "<div>" + "a" * 300 + "</div>\n"),
    "long subject word": (usual("y" * 120), "short\n", "<p>short</p>\n"),
    "encoded-word lookalike and spaces": (usual("=?utf-8?q?hi?= and  two  spaces "), "a\n",
                                         "b\n"),
    "unsubscribe": (usual("s", **{"List-Unsubscribe": f"<{LONG_URL}>",
                                   "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}),
                    "To stop these messages, open it.\n", "<p>stop</p>\n"),
    "boundary-like line": (usual("s"), "--===============1==\nfrom the start\nFrom me\n.\n",
                           ".\n..\n"),
    "empty-ish": (usual(""), "\n", "\n"),
    "carriage returns": (usual("s"), "one\r\ntwo\rthree\n", "<p>\r\n</p>\n"),
    "many quoted-printable lines": (
        usual("s"), "".join(f"Ligne {n} : très{' ' * (n % 3)}\n" for n in range(25)),
        "".join(f"<p>é{'x' * (60 + n)} \t</p>\n" for n in range(14))),
}


@pytest.mark.parametrize("name", CASES)
def test_direct_bytes_equal_the_standard_librarys(name: str) -> None:
    headers, text, html = CASES[name]
    for seed in range(3):
        assert direct(headers, text, html, seed) == reference(headers, text, html, seed)


@settings(max_examples=150, deadline=None)
@given(subject=st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=120),
       text=st.text(st.characters(exclude_categories=["Cs"]), max_size=400),
       html=st.text(st.characters(exclude_categories=["Cs"]), max_size=400),
       name=st.sampled_from(HEADERS[2:10]))
def test_any_text_is_written_as_the_standard_library_writes_it(subject: str, text: str,
                                                               html: str, name: str) -> None:
    text, html = text + "\n", html + "\n"  # the channel ends both with a newline
    headers = [(n, subject if n == name and n not in ("Date", "Message-ID") else v)
               for n, v in usual("fixed")]
    if name == "Subject":
        headers = usual(subject)
    assert direct(headers, text, html, 7) == reference(headers, text, html, 7)


@settings(max_examples=400, deadline=None)
@given(lines=st.lists(st.text(st.sampled_from("ab= \t\x0b\x0c\x85\xe9\x7f\x00"), max_size=170),
                      min_size=1, max_size=5))
def test_quoted_printable_is_the_standard_librarys(lines: list[str]) -> None:
    """Lines around the 78-character limit, with escapes and spaces at every place a line
    is cut or ends (the cases the encoder treats apart)."""
    text = "\n".join(lines) + "\n"
    assert quoted_printable(text) == quoprimime.body_encode(text, 78)
    for width in range(74, 82):  # every place an "=" escape or a space meets the limit
        for tail in ("=", " ", "\t", "x=", "= ", "é "):
            line = "y" * (width - len(tail)) + tail + "\n"
            assert quoted_printable(line) == quoprimime.body_encode(line, 78), repr(line)


@pytest.mark.parametrize("value", ["a\r\nBcc: evil@example.org", "line\nbreak", "two\rlines"])
def test_a_line_break_in_a_header_is_refused_as_before(value: str) -> None:
    with pytest.raises(ValueError):
        header("Subject", value)
    with pytest.raises(ValueError):
        reference(usual(value), "a\n", "b\n", 1)


def test_headers_for_an_smtputf8_transaction_are_utf8_as_before() -> None:
    """An address that is not ASCII: `send_message` flattened with `utf8=True`."""
    headers = usual("Réponse de Jörg", From="Jörg <jörg@exämple.org>", To="zoë@example.org")
    msg = EmailMessage(policy=POLICY)
    for name, value in headers:
        msg[name] = value
    msg.set_content("a\n")
    msg.add_alternative("b\n", subtype="html")
    out = io.BytesIO()
    random.seed(3)
    BytesGenerator(out, policy=POLICY.clone(utf8=True)).flatten(msg, linesep="\r\n")
    random.seed(3)
    mine = alternative(b"".join(header(n, v, utf8=True) for n, v in headers), "a\n", "b\n")
    assert mine == out.getvalue()
    assert "From: Jörg <jörg@exämple.org>\r\n".encode() in mine
