"""The feeds `notifier demo` serves: a WordPress post's comment feed before and after a new
comment arrived.

Both are real WordPress 6.1 output (the project's test fixtures `01-seed-thread` and
`02-markup-comment`, `post-comments.atom.xml`), with the capture's origin
`http://blog.test`, which the demo replaces with its own loopback server's.
"""

from __future__ import annotations

from importlib.resources import files

FIXTURE_ORIGIN = "http://blog.test"
FEED_PATH = "/2013/10/20/why-defend-stalin/feed/atom/"
STAGES = ("1-thread.atom.xml", "2-new-comment.atom.xml")


def stage(index: int, origin: str) -> bytes:
    """The feed as served at step `index` (0: the thread, 1: with one new comment)."""
    data = files(__name__).joinpath(STAGES[index]).read_bytes()
    return data.replace(FIXTURE_ORIGIN.encode(), origin.encode())
