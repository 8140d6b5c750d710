"""Changing the operator's configuration file from the command line, keeping it theirs.

`notifier add` and `notifier import` append subscriptions. The new items are written as
text right after the last item of the `subscriptions:` list, in that list's own
indentation; every other byte of the file stays as the operator wrote it. (A round-trip
library such as ruamel.yaml keeps comments too, but re-indents the document to one guessed
style, moves comments' columns and drops quotes the operator chose; inserting text where
the parser says the list ends changes nothing else.) The result is checked with the loader
`notifier check` uses before it replaces the file, atomically and with the file's
permissions, so a command never leaves a configuration the daemon would refuse.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from notifier.config import Config, ConfigError, load_config


def append_subscriptions(path: Path, items: Sequence[Mapping[str, Any]]) -> Config:
    """Append `items` to the file's `subscriptions:` list, check, and replace the file.

    Returns the checked configuration (loaded without requiring channel secrets, as the
    shell running this often lacks them); raises ConfigError and leaves the file as it was
    when the result would not be valid.
    """
    text = path.read_text(encoding="utf-8")
    new_text = _with_items(path, text, items)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(new_text)
        with contextlib.suppress(OSError):  # a file system without modes: keep its default
            os.chmod(temp, path.stat().st_mode & 0o7777)
        try:
            config = load_config(temp, require_secrets=False)
        except ConfigError as exc:
            raise ConfigError([p.replace(temp, str(path)) for p in exc.problems]) from None
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return dataclasses.replace(config, path=path)


def _with_items(path: Path, text: str, items: Sequence[Mapping[str, Any]]) -> str:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML, fix it first (`notifier check`): "
                           f"{exc}"]) from None
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError([f"{path}: the file must be a mapping with keys such as 'channels' "
                           "and 'subscriptions'"])
    subs = next((value for key, value in root.value
                 if isinstance(key, yaml.ScalarNode) and key.value == "subscriptions"), None)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    if subs is None or (isinstance(subs, yaml.ScalarNode) and subs.value in ("", "~", "null")):
        block = "".join(_item(item, 2, 4) for item in items)
        if subs is None:
            return "".join(lines) + "subscriptions:\n" + block
        line = subs.start_mark.line  # `subscriptions:` with nothing after it
        return "".join(lines[:line + 1]) + block + "".join(lines[line + 1:])
    if not isinstance(subs, yaml.SequenceNode) or subs.flow_style or not subs.value:
        raise ConfigError([f"{path}:{subs.start_mark.line + 1}: subscriptions: add to a block "
                           "list ('- name: ...' items) only; rewrite this one as such first"])
    last = subs.value[-1]
    key_column = last.start_mark.column
    item_line = lines[last.start_mark.line]
    dash_column = item_line.rfind("-", 0, key_column)
    if dash_column < 0:
        raise ConfigError([f"{path}:{last.start_mark.line + 1}: cannot tell how this list is "
                           "indented; add the subscription by hand"])
    end = _end_line(last)
    block = "".join(_item(item, dash_column, key_column) for item in items)
    return "".join(lines[:end + 1]) + block + "".join(lines[end + 1:])


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


def _item(item: Mapping[str, Any], dash: int, column: int) -> str:
    out = []
    for index, (key, value) in enumerate(item.items()):
        lead = " " * dash + "-" + " " * (column - dash - 1) if index == 0 else " " * column
        out.append(f"{lead}{key}: {_scalar(value)}\n")
    return "".join(out)


def _scalar(value: Any) -> str:
    """One value in flow style, quoted only where YAML needs it."""
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    dumped = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return dumped.removesuffix("\n").removesuffix("\n...").strip()
