"""The root of every error notifier raises on purpose, and where each branch lives.

    NotifierError
    ├── ConfigError           configproblems.py the file is wrong: file, line, key, what to do
    ├── ConfigWriteError      configfile.py     `add`/`import` cannot replace the file
    ├── StoreError            store/records.py  the state cannot be opened, or is too new
    ├── ParseError            entrytext.py      a body is not a feed (or not REST JSON)
    ├── DiscoveryError        discover.py       no feed found for what a subscription names
    ├── OpmlError             opml.py           a file to import is not an OPML list of feeds
    ├── TargetBlocked         fetch.py          an address refused by `block_private_networks`
    ├── Withdrawn             fetch.py          a request called off before it was sent
    ├── UnknownChannelKind    channels/         a `type:` no channel kind registers
    ├── RenderError           jinjaenv.py       a template failed (also a jinja2.TemplateError)
    ├── AdminListenError      daemon.py         `admin.listen` cannot be bound
    ├── ReloadRefused         daemon.py         a new file that cannot apply without a restart
    └── DeliveryError         delivery/channel.py
        ├── TemporaryFailure                    try again later, perhaps after Retry-After
        └── PermanentFailure                    do not retry; perhaps disable the channel

Each class stays beside the code that raises it, so the reason it exists is read there;
this module gives them one root, so a caller (the CLI, a daemon loop) can tell notifier's
own failures, with messages written for the person fixing them, from bugs. Failures of
one feed or one message are not raised at all: they travel as data (a feed's as a
`failures.Failure`, a kind and a message, in `Polled.failure`; a message's in `SendResult`)
so that one bad feed cannot stop the others.

Not in the tree, on purpose: private signals that never leave their module (`_Full`,
`_BodyTooLarge`, an SMTP `_ConnectionLost` that is a `TemporaryFailure`), and the feed
transport's own (`http1.TransportError` with `http1.ProtocolError`, `http1.ConnectTimeout`,
`http1.ConnectFailed`; `http1.PrivateAddressBlocked`, an `OSError` as a failed connect is):
the fetcher turns each into a `Failure` with a reason before anyone else sees it.
`tests/test_errors.py` walks the real classes and compares them with this drawing.
"""

from __future__ import annotations

__all__ = ["NotifierError"]


class NotifierError(Exception):
    """A failure notifier expected and explains; anything else is a bug."""
