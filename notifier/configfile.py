"""Changing the operator's configuration file from the command line, keeping it theirs.

`notifier add` and `notifier import` append subscriptions. The new items are written as
text where the parser says the `subscriptions:` list ends, in that list's own style and
indentation and with the file's own line endings; every other byte of the file stays as the
operator wrote it. (A round-trip library such as ruamel.yaml keeps comments too, but
re-indents the document to one guessed style, moves comments' columns and drops quotes the
operator chose; inserting text changes nothing else.) The layouts people write are each
handled: a block list indented or not, items whose dash stands alone, a flow list
(`subscriptions: []`, one line or several, with a trailing comma), no `subscriptions:` key
yet, comments after the list, CRLF, no final newline. The result is checked with the loader
`notifier check` uses before it replaces the file (the link's target, when the path is a
symbolic link), atomically and with the file's mode and owner, so a command never leaves a
configuration the daemon would refuse.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from notifier.config import Config, ConfigError, load_config
from notifier.errors import NotifierError


class ConfigWriteError(NotifierError):
    """The file cannot be replaced (its folder not writable, a full disk): nothing changed."""


_LINE_BREAK = re.compile(r"\r\n|[\r\n\x85\u2028\u2029]")
"""The line breaks YAML counts, so that line numbers here are the parser's."""


def append_subscriptions(path: Path, items: Sequence[Mapping[str, Any]]) -> Config:
    """Append `items` to the file's `subscriptions:` list, check, and replace the file.

    Returns the checked configuration (loaded without requiring channel secrets, as the
    shell running this often lacks them); raises ConfigError and leaves the file as it was
    when the result would not be valid.
    """
    target = path.resolve()  # a symbolic link stays one: its target is rewritten
    try:
        text = target.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot read it: {exc}"]) from None
    new_text = with_items(path, text, items)
    # Checked as the daemon will read it: through `path` (a link's folder, for `include:`
    # and the state), before anything is written.
    config = load_config(path, require_secrets=False, need_subscriptions=False,
                         text=new_text)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".new",
                                    dir=target.parent)
    except OSError as exc:
        raise ConfigWriteError(f"{path}: cannot write beside it in {target.parent}: "
                               f"{exc.strerror or exc}") from None
    try:
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(new_text.encode("utf-8"))
        except OSError as exc:
            raise ConfigWriteError(f"{path}: cannot write the new file: "
                                   f"{exc.strerror or exc}") from None
        status = target.stat()
        with contextlib.suppress(OSError):  # a file system without modes: keep its default
            os.chmod(temp, status.st_mode & 0o7777)
        with contextlib.suppress(OSError):  # only root may give a file away; keep ours
            os.chown(temp, status.st_uid, status.st_gid)
        try:
            os.replace(temp, target)
        except OSError as exc:
            raise ConfigWriteError(f"{path}: cannot replace it: {exc.strerror or exc}") \
                from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return config


def with_items(path: Path, text: str, items: Sequence[Mapping[str, Any]]) -> str:
    """`text` with `items` appended to its subscriptions (`path` names it in errors)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML, fix it first (`notifier check`): "
                           f"{exc}"]) from None
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError([f"{path}: the file must be a mapping with keys such as 'channels' "
                           "and 'subscriptions'"])
    edit = _Text(text)
    subs = next((value for key, value in root.value
                 if isinstance(key, yaml.ScalarNode) and key.value == "subscriptions"), None)
    if root.flow_style:
        if subs is None:
            edit.insert(root.value[-1][1].end_mark.index if root.value
                        else root.start_mark.index + 1,
                        ("" if not root.value else ", ") + "subscriptions: []")
            return with_items(path, edit.result(), items)
        if not isinstance(subs, yaml.SequenceNode):
            raise _not_a_list(path, subs)
        return _into_flow(edit, subs, items)
    if subs is None:
        indent = _indent(root)
        edit.append("subscriptions:" + edit.newline + "".join(
            _block(item, indent, indent + 2, edit.newline) for item in items))
        return edit.result()
    empty = isinstance(subs, yaml.ScalarNode) and subs.tag.endswith(":null")
    if not empty and not isinstance(subs, yaml.SequenceNode):
        raise _not_a_list(path, subs)
    if empty or (subs.flow_style and not subs.value):
        # `subscriptions:`, `subscriptions: ~`, `subscriptions: []`: the value goes (with
        # the spaces before it), a block list follows.
        indent = _indent(root)
        start = subs.start_mark.index
        if subs.end_mark.index > start:
            while start > 0 and text[start - 1] in " \t":
                start -= 1
        edit.replace(start, subs.end_mark.index, "")
        line = _owned_lines(edit, subs.start_mark.line, indent)
        edit.insert_after_line(line, "".join(_block(item, indent, indent + 2, edit.newline)
                                             for item in items))
        return edit.result()
    assert isinstance(subs, yaml.SequenceNode)
    if subs.flow_style:
        return _into_flow(edit, subs, items)
    dash = subs.start_mark.column  # a block list starts at its first dash
    last = subs.value[-1]
    key = last.start_mark.column
    if isinstance(last, yaml.MappingNode) and not last.flow_style and last.value:
        key = last.value[0][0].start_mark.column  # past an anchor or tag
    if key <= dash:
        key = dash + 2
    line = _owned_lines(edit, _end_line(last), dash)
    edit.insert_after_line(line, "".join(_block(item, dash, key, edit.newline)
                                         for item in items))
    return edit.result()


def _not_a_list(path: Path, node: yaml.Node) -> ConfigError:
    return ConfigError([f"{path}:{node.start_mark.line + 1}: subscriptions: expected a list "
                        "('- name: ...' items); fix it first (`notifier check`)"])


def _into_flow(edit: _Text, subs: yaml.SequenceNode,
               items: Sequence[Mapping[str, Any]]) -> str:
    """`[a, b]` -> `[a, b, new]`, right after the last item (before a trailing comma)."""
    flows = [_flow(item) for item in items]
    if subs.value:
        edit.insert(subs.value[-1].end_mark.index, "".join(", " + f for f in flows))
    else:
        edit.insert(subs.end_mark.index - 1, ", ".join(flows))  # before the `]`
    return edit.result()


def _indent(root: yaml.MappingNode) -> int:
    """How far the file indents a nested block (2 unless it shows otherwise)."""
    for _, value in root.value:
        if isinstance(value, yaml.MappingNode | yaml.SequenceNode) and not value.flow_style \
                and value.start_mark.column > 0:
            return int(value.start_mark.column)
    return 2


def _end_line(node: yaml.Node) -> int:
    """The last line holding part of `node` (block collections end at the next token,
    perhaps lines later, so their last leaf is asked instead)."""
    if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
        return _end_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
        return _end_line(node.value[-1])
    end = node.end_mark
    # A block scalar ends at the start of the line after it.
    if end.column == 0 and end.line > node.start_mark.line:
        return int(end.line) - 1
    return int(end.line)


def _owned_lines(edit: _Text, line: int, dash: int) -> int:
    """The last line of the list that ends at `line`: comment lines indented into the list
    (a commented-out setting of the last item, a commented-out item) belong to it; a blank
    line belongs only when such a comment follows it."""
    owned = line
    for number in range(line + 1, len(edit.lines)):
        content = edit.lines[number].rstrip("\r\n\x85\u2028\u2029")
        stripped = content.lstrip(" ")
        if not stripped:
            continue
        column = len(content) - len(stripped)
        if stripped.startswith("#") and column > 0 and column >= dash:
            owned = number
            continue
        break
    return owned


def _block(item: Mapping[str, Any], dash: int, column: int, newline: str) -> str:
    out = []
    for index, (key, value) in enumerate(item.items()):
        lead = " " * dash + "-" + " " * (column - dash - 1) if index == 0 else " " * column
        out.append(f"{lead}{key}: {_scalar(value)}{newline}")
    return "".join(out)


def _flow(item: Mapping[str, Any]) -> str:
    dumped = yaml.safe_dump(dict(item), default_flow_style=True, allow_unicode=True,
                            sort_keys=False, width=10_000)
    return dumped.strip()


def _scalar(value: Any) -> str:
    """One value in flow style, quoted only where YAML needs it."""
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return dumped.removesuffix("\n").removesuffix("\n...").strip()


def _ends_line(text: str) -> bool:
    return not text or text[-1] in "\r\n\x85\u2028\u2029"


class _Text:
    """The file as lines with their own breaks, edited by character index or line."""

    def __init__(self, text: str) -> None:
        self.text = text
        found = _LINE_BREAK.search(text)
        self.newline = found.group() if found else "\n"
        self._edits: list[tuple[int, int, str]] = []
        starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
        self.lines = [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)],
                                                strict=True)]

    def insert(self, index: int, new: str) -> None:
        self._edits.append((index, index, new))

    def replace(self, start: int, end: int, new: str) -> None:
        self._edits.append((start, end, new))

    def insert_after_line(self, line: int, new: str) -> None:
        end = sum(len(one) for one in self.lines[:line + 1])
        if not _ends_line(self.lines[line]):
            new = self.newline + new  # the file's last line, without a break
        self.insert(end, new)

    def append(self, new: str) -> None:
        """At the end of the file, on a line of its own."""
        self.insert(len(self.text), ("" if _ends_line(self.text) else self.newline) + new)

    def result(self) -> str:
        out = self.text
        for start, end, new in sorted(self._edits, key=lambda e: (e[0], e[1]), reverse=True):
            out = out[:start] + new + out[end:]
        return out
