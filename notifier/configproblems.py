"""Where a configuration problem is, and how it is said: `file:line: key.path: message`.

A problem is found far from the text it is about: pydantic names a location inside the
validated data (with its own parts, union tags and validator names, mixed in), a cross-check
knows a subscription by its index in all files together, an unset variable by the value it
was in. The person reading the message is editing a YAML file and needs the file and line
they must change, and what to write there; so every layer records key paths and this module
alone turns them into text, with the line of the nearest key the YAML reader marked, the
included file a subscription came from, and "did you mean" when a name is nearly right.
Kept apart from the models and the loader so that the YAML reader and the substitutions can
word their problems the same way without importing the models.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notifier.channels import channel_config_type
from notifier.errors import NotifierError

KeyPath = tuple[str | int, ...]


class ConfigError(NotifierError):
    """One or more problems in a configuration file; `str()` lists them, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def dotted(path: KeyPath) -> str:
    """`subscriptions[3].url`: a key path as it is read in the file."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class Locator:
    """Turns a key path into `file:line: path: message`, the line of the nearest known key.

    Subscriptions from included files keep their own file and index in that file: `lines`
    holds their lines under the combined index, and `add_file` says which range is whose.
    `schema` is the document's model, whose field names a misspelt key is compared with.
    """

    def __init__(self, file: Path, lines: Mapping[KeyPath, int], data: Any,
                 schema: type[Any]) -> None:
        self.file = file
        self.lines = lines
        self.data = data
        self.schema = schema
        self._starts: list[int] = []
        self._origins: list[tuple[Path, int]] = []
        self._order: dict[str, tuple[int, int]] = {}

    def add_file(self, file: Path, rank: int, offset: int, count: int) -> None:
        """Subscriptions `offset` to `offset + count - 1` come from `file`, the rank-th."""
        if count:
            self._starts.append(offset)
            self._origins.append((file, rank))

    def adopt(self, other: Locator, rank: int) -> None:
        """Sort the problems another file's locator described as that file's."""
        self._order.update({text: (rank, line) for text, (_, line) in other._order.items()})

    def _origin(self, path: KeyPath) -> tuple[Path, int, KeyPath]:
        """The file, its rank and the path as that file spells it."""
        if self._starts and len(path) >= 2 and path[0] == "subscriptions" \
                and isinstance(path[1], int) and path[1] >= self._starts[0]:
            which = bisect.bisect_right(self._starts, path[1]) - 1
            file, rank = self._origins[which]
            return file, rank, ("subscriptions", path[1] - self._starts[which], *path[2:])
        return self.file, 0, path

    def file_of(self, path: KeyPath) -> Path:
        return self._origin(path)[0]

    def shown_path(self, path: KeyPath) -> KeyPath:
        return self._origin(path)[2]

    def location(self, path: KeyPath) -> str:
        """`file:line` of a key path."""
        line = self._line(path)
        return f"{self.file_of(path)}:{line}" if line else str(self.file_of(path))

    def problem(self, path: KeyPath, message: str) -> str:
        file, rank, shown = self._origin(path)
        line = self._line(path)
        text = f"{file}:{line}: {dotted(shown)}: {message}" if line else \
            f"{file}: {dotted(shown)}: {message}"
        self._order[text] = (rank, line or 0)
        return text

    def line_of(self, problem: str) -> tuple[int, int]:
        """Sort key: problems are listed by file (main first), then in the order of lines."""
        return self._order.get(problem, (0, 0))

    def _line(self, path: KeyPath) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error_path(self, err: Any, prefix: KeyPath = ()) -> KeyPath:
        return self._real_path(prefix + tuple(err["loc"]))

    def describe_error(self, err: Any, prefix: KeyPath = ()) -> str:
        path = self.error_path(err, prefix)
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = self._value_at(path[:-1])
            hint = ""
            if isinstance(parent, dict):
                hint = self._under_empty_key(parent, path, prefix) or close_match(
                    str(path[-1]), self._allowed_keys(path[:-1], prefix))
            return self.problem(path, f"unknown key{hint}")
        if kind == "missing":
            return self.problem(path, "this required key is missing")
        if kind in ("dict_type", "model_type", "list_type") and path \
                and isinstance(parent := self._value_at(path[:-1]), dict | list) \
                and _holds_none(parent, path[-1]):
            # `c:` then `type: console` in the same column: YAML reads an empty `c`.
            return self.problem(path, "nothing is written under this key; if the lines after "
                                      "it belong to it, indent them more than the key")
        message = str(err["msg"])
        message = message.removeprefix("Value error, ")
        if kind in ("literal_error", "enum"):
            message += f" (got {err.get('input')!r})"
        return self.problem(path, message)

    def _under_empty_key(self, parent: dict[Any, Any], path: KeyPath,
                         prefix: KeyPath) -> str:
        """`defaults:` then `interval: 5m` in the same column: the key belongs under the
        empty one before it, indented."""
        keys = list(parent)
        index = keys.index(path[-1]) if path[-1] in keys else 0
        if index == 0 or parent[keys[index - 1]] is not None:
            return ""
        above = keys[index - 1]
        if str(path[-1]) not in self._allowed_keys((*path[:-1], above), prefix):
            return ""
        return (f"; if it belongs under '{above}:' (empty as written), indent it more than "
                f"'{above}'")

    def _allowed_keys(self, path: KeyPath, prefix: KeyPath) -> list[str]:
        """Field names of the model at `path`, to suggest the key the user meant."""
        model: Any = self.schema
        if prefix[:1] == ("channels",) and len(prefix) == 2:
            body = self._value_at(prefix)
            try:
                model = channel_config_type(str(body.get("type")))
            except (KeyError, AttributeError):
                return []
            path = path[len(prefix):]
        for part in path:
            if isinstance(part, int):
                continue
            field = getattr(model, "model_fields", {}).get(part)
            if field is None:
                return []
            annotation = field.annotation
            inner = getattr(annotation, "__args__", None)
            model = inner[0] if inner and hasattr(inner[0], "model_fields") else annotation
        fields = getattr(model, "model_fields", {})
        return [f.alias or n for n, f in fields.items()]

    def _real_path(self, loc: KeyPath) -> KeyPath:
        """Drop pydantic's own loc parts (union tags, validator names) that are not keys."""
        out: list[str | int] = []
        value = self.data
        for part in loc:
            in_dict = isinstance(value, dict) and part in value
            in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
            if in_dict or in_list:
                value = value[part]
                out.append(part)
            elif isinstance(value, dict) and isinstance(part, str) and part != "[key]":
                out.append(part)  # a missing or unknown key: name it
                value = None
        return tuple(out)

    def _value_at(self, path: KeyPath) -> Any:
        value = self.data
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return None
        return value


def _holds_none(parent: dict[Any, Any] | list[Any], key: str | int) -> bool:
    if isinstance(parent, dict):
        return key in parent and parent[key] is None
    return isinstance(key, int) and 0 <= key < len(parent) and parent[key] is None


def close_match(word: str, options: list[str], *, list_all: bool = True) -> str:
    """`; did you mean 'x'?` for a near miss, else `; expected one of: ...` (or nothing)."""
    import difflib  # only when a name is wrong: not on every start

    best = difflib.get_close_matches(word, options, n=1)
    if best:
        return f"; did you mean {best[0]!r}?"
    if options and list_all:
        return f"; expected one of: {', '.join(options)}"
    return ""


def missing_problem(where: Locator, path: KeyPath, names: list[str],
                    env: Mapping[str, str]) -> str:
    """One problem per value; "did you mean" names a set variable spelt almost alike."""
    text = "; ".join(
        f"environment variable {name} is not set; set it, or write ${{{name}:-default}} "
        f"to give a default{close_match(name, list(env), list_all=False)}"
        for name in names)
    return where.problem(path, text)


def is_covered(path: KeyPath, missing: Mapping[KeyPath, object]) -> bool:
    """Whether a validation error sits under a value whose variable is missing: the
    variable's problem says it already, and the empty stand-in would only add noise."""
    return any(path[:len(m)] == m  # the value itself, or inside it
               or (len(path) == len(m) - 1 and m[:len(path)] == path)  # its mapping's check
               for m in missing)

