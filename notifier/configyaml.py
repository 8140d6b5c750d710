"""Reading a configuration file's YAML: plain values, and the line of every key and item.

Every problem notifier reports in a configuration names its line, and most are found after
parsing (a value pydantic refuses, a name no channel has); so reading keeps, beside each
value, the line where its key or list item stands, and `configproblems.Locator` looks them
up. `yaml.safe_load` keeps no lines, and composing PyYAML's node tree to get them calls back
into Python for every node's tag and object: loading 10,000 subscriptions took 5.2 s that way
(issue 7), 90% of it there. So the values and their lines are built straight from libyaml's
parse events when PyYAML has libyaml (10,000 subscriptions, 1.2 MiB, in well under 1 s; see
`benchmarks/config_load.py`), and from the node tree otherwise, or when the events show
anything unusual: a YAML error, an undefined alias, a second document. The node-tree path
words those as it always did, pointing at the line the user has to change.

Both builders count what aliases expand to (MAX_ALIAS_NODES), refuse unsafe tags at their
line, apply merge keys, and report a key written twice: a "billion laughs" file, a
`!!python/...` tag and a silently overwritten key are each a mistake named where it stands.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from notifier.configproblems import ConfigError, KeyPath, dotted

MAX_ALIAS_NODES = 10_000
"""Most values one file may produce by expanding YAML aliases (`*name`). Aliases are handy
for a shared `notify:` list, but nested ones multiply: nine levels of nine references in
631 bytes expand to 387 million values (a "billion laughs" bomb)."""

_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml composes ten times faster than the pure-Python parser; not every build has it."""

_STR_TAG = "tag:yaml.org,2002:str"
_FIRST_CHARS = frozenset(_BASE_LOADER.yaml_implicit_resolvers)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    """The safe loader, resolving most strings without trying every implicit type.

    Even libyaml calls back into Python to resolve each node's tag; a quoted scalar, or a
    plain one whose first character starts no implicit type (bool, int, null, ...), is a
    string, which is what most values are. Everything else goes the usual way.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and None not in _FIRST_CHARS and (
                not implicit[0] or (value and value[0] not in _FIRST_CHARS)):
            return _STR_TAG
        return super().resolve(kind, value, implicit)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def parse_yaml(text: str, file: Path, events: Any) -> tuple[Any, dict[KeyPath, int]]:
    """The plain values and the line of every key and list item; `events` is EVENT_PARSER,
    or None to build from the node tree alone.

    Built straight from libyaml's parse events when it is there: composing a node tree
    calls back into Python to resolve every node's tag and to make every node, about 90% of
    the time of loading 10,000 subscriptions; the events alone cost a tenth of it. Anything
    unusual (a YAML error, an undefined alias, a second document) is handed to the node-tree
    path, which reports it as it always did.
    """
    if events is not None:
        lines: dict[KeyPath, int] = {}
        builder = _EventBuilder(file, lines, events(text))
        try:
            data = builder.document()
        except RecursionError:
            raise ConfigError([f"{file}: the YAML is nested too deeply"]) from None
        except (yaml.YAMLError, _Unusual):
            pass
        else:
            if builder.problems:
                raise ConfigError(builder.problems)
            return data, lines
    return _parse_yaml_nodes(text, file)


def _parse_yaml_nodes(text: str, file: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Compose once, then build the plain values and the line of every key and list item in
    one walk over the node tree."""
    node = _compose(text, file)
    lines: dict[KeyPath, int] = {}
    if node is None:
        return None, lines
    builder = _Builder(file, lines)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise ConfigError([f"{file}: the YAML is nested too deeply"]) from None
    if builder.problems:
        raise ConfigError(builder.problems)
    return data, lines


def _compose(text: str, file: Path) -> yaml.Node | None:
    try:
        node: yaml.Node | None = yaml.compose(text, Loader=_Loader)
        return node
    except yaml.YAMLError as exc:
        error: yaml.YAMLError = exc
    if _BASE_LOADER is not yaml.SafeLoader:
        # The pure-Python parser's messages say what it expected; parse again to show them.
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            return node
        except yaml.YAMLError as exc:
            error = exc
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        hinted = _yaml_hint(error)
        if hinted is not None:
            line_number, hint = hinted
            raise ConfigError([f"{file}:{line_number}: not valid YAML: {hint}"])
        line = f":{mark.line + 1}" if mark else ""
        context = ""
        if error.context and error.context_mark and error.context_mark is not mark:
            context = f" ({error.context} that starts on line {error.context_mark.line + 1})"
        raise ConfigError([f"{file}{line}: not valid YAML: {error.problem or error}{context}"])
    raise ConfigError([f"{file}: not valid YAML: {error}"])


_INDENT_HINT = ("the indentation of this line does not fit the lines above it: the keys of "
                "one mapping start in the same column, and a list item's keys line up under "
                "the first one after '- '")


def _yaml_hint(error: yaml.MarkedYAMLError) -> tuple[int, str] | None:
    """The line the user has to change and what to do, for the mistakes people make.

    The parser often notices a mistake a line later (a key without ':' is found out when
    the next line starts); these messages point at the line where it was made.
    """
    problem = error.problem or ""
    at = error.problem_mark.line + 1 if error.problem_mark else None
    since = error.context_mark.line + 1 if error.context_mark else None
    context = error.context or ""
    if "could not find expected ':'" in problem and since is not None:
        return since, ("this line has no ':' after its key; write `key: value`, with a "
                       "space after the colon")
    if "quoted scalar" in context and since is not None:
        return since, "the quoted value that starts on this line is never closed"
    if "flow sequence" in context and since is not None:
        return since, "the [ list ] that starts on this line is not closed with ]"
    if "flow mapping" in context and since is not None:
        return since, "the { mapping } that starts on this line is not closed with }"
    if "'\\t'" in problem and at is not None:
        return at, "a tab character; YAML indents with spaces only"
    if at is not None and ("expected <block end>" in problem
                           or "mapping values are not allowed" in problem
                           or "expected <block mapping start>" in problem):
        return at, _INDENT_HINT
    return None


class _Builder:
    """Plain values from a node tree, recording lines and counting what aliases expand to.

    The composer shares one node for an anchor and all its aliases; a node seen before is an
    alias, and everything built under it counts against MAX_ALIAS_NODES.
    """

    def __init__(self, file: Path, lines: dict[KeyPath, int]) -> None:
        self.file = file
        self.lines = lines
        self.problems: list[str] = []
        self.seen: set[int] = set()
        self.open: set[int] = set()
        self.expanded = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: yaml.Node, path: KeyPath, in_alias: bool = False) -> Any:
        if isinstance(node, yaml.ScalarNode):
            if in_alias:
                self._count(node)
            if node.tag == _STR_TAG:
                return node.value
            return self._scalar(node)
        ident = id(node)
        if ident in self.open:
            raise ConfigError([f"{self.file}:{node.start_mark.line + 1}: an alias refers to "
                               "a collection that contains it"])
        if ident in self.seen:
            in_alias = True
        self.seen.add(ident)
        if in_alias:
            self._count(node)
        self.open.add(ident)
        try:
            if isinstance(node, yaml.SequenceNode):
                items = []
                for index, item in enumerate(node.value):
                    if item.tag == _STR_TAG and not in_alias \
                            and isinstance(item, yaml.ScalarNode):
                        items.append(item.value)
                    else:
                        items.append(self.build(item, (*path, index), in_alias))
                    self.lines[(*path, index)] = item.start_mark.line + 1
                return items
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, in_alias)
        finally:
            self.open.discard(ident)
        return None

    def _mapping(self, node: yaml.MappingNode, path: KeyPath, in_alias: bool) -> Any:
        out: dict[Any, Any] = {}
        merged: list[Any] = []
        seen: set[str] = set()
        lines = self.lines
        scalar = yaml.ScalarNode
        for key_node, value_node in node.value:
            key_tag = key_node.tag
            if key_tag == _MERGE_TAG:
                merged.append(self.build(value_node, path, in_alias))
                continue
            if not isinstance(key_node, scalar):
                raise ConfigError([f"{self.file}:{key_node.start_mark.line + 1}: "
                                   f"{dotted(path)}: a key must be a plain value"])
            key = key_node.value
            name = str(key)
            child = (*path, name)
            if name in seen:
                self.problems.append(f"{self.file}:{key_node.start_mark.line + 1}: "
                                     f"{dotted(child)}: this key appears twice; "
                                     "keep one of them")
            seen.add(name)
            if key_tag != _STR_TAG:
                key = self._scalar(key_node)
            if value_node.tag == _STR_TAG and not in_alias and type(value_node) is scalar:
                out[key] = value_node.value  # most values: skip the call
            else:
                out[key] = self.build(value_node, child, in_alias)
            lines[child] = key_node.start_mark.line + 1
        return _merge_keys(merged, out, self.file, node.start_mark.line + 1, path)

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        return _typed_scalar(self.constructor, node, self.file)

    def _count(self, node: yaml.Node) -> None:
        self.expanded += 1
        if self.expanded > MAX_ALIAS_NODES:
            raise ConfigError([f"{self.file}:{node.start_mark.line + 1}: aliases (*name) "
                               f"expand to more than {MAX_ALIAS_NODES} values; write the "
                               "values out or use fewer nested aliases"])


def _typed_scalar(constructor: Any, node: yaml.ScalarNode, file: Path) -> Any:
    """A scalar's value by its tag (int, bool, null, a timestamp...), as the safe loader
    makes it; an explicit tag it does not know (`!!python/...`) is a mistake at its line."""
    construct = constructor.yaml_constructors.get(node.tag)
    try:
        if construct is not None:
            return construct(constructor, node)
        return constructor.construct_object(node)  # raises: unknown tag
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}:{node.start_mark.line + 1}: not valid YAML: "
                           f"{getattr(exc, 'problem', None) or exc}"]) from None


def _merge_keys(merged: list[Any], own: dict[Any, Any], file: Path, line: int,
                path: KeyPath) -> dict[Any, Any]:
    """A mapping's `<<` merges under its own keys; of several merged mappings the first
    wins (YAML's merge key rule), so they are applied last to first."""
    if not merged:
        return own
    result: dict[Any, Any] = {}
    for source in reversed(merged):
        for mapping in reversed(source) if isinstance(source, list) else [source]:
            if not isinstance(mapping, dict):
                raise ConfigError([f"{file}:{line}: {dotted(path)}: '<<' must merge a "
                                   "mapping"])
            result.update(mapping)
    result.update(own)
    return result


EVENT_PARSER: Any = getattr(getattr(yaml, "_yaml", None), "CParser", None)
"""libyaml's parser, whose `get_event` the event builder reads; None without libyaml."""
_IMPLICIT: dict[Any, list[tuple[str, re.Pattern[str]]]] = \
    yaml.resolver.Resolver.yaml_implicit_resolvers


class _Unusual(Exception):
    """Something the event builder leaves to the node-tree path."""


_RESOLVERS: dict[Any, list[tuple[str, re.Pattern[str]]]] = {
    first: [*resolvers, *_IMPLICIT.get(None, [])] for first, resolvers in _IMPLICIT.items()}
"""The resolvers a plain scalar's first character selects, those for any first character
after them (PyYAML's order), joined once: not again for each of 70,000 scalars."""
_ANY_FIRST: list[tuple[str, re.Pattern[str]]] = _IMPLICIT.get(None, [])


def _plain_tag(value: str) -> str:
    """The tag of a plain (unquoted) scalar, as PyYAML's resolver finds it."""
    for tag, pattern in _RESOLVERS.get(value[0] if value else "", _ANY_FIRST):
        if pattern.match(value):
            return tag
    return _STR_TAG


class _EventBuilder:
    """What `_Builder` makes from a node tree, made from the parse events instead.

    An anchored value is kept with its size (values, aliases inside it expanded) and the
    lines under it, so an alias costs its size against MAX_ALIAS_NODES before it is copied,
    and its keys get lines, as in the node-tree walk.
    """

    def __init__(self, file: Path, lines: dict[KeyPath, int], parser: Any) -> None:
        self.file = file
        self.lines = lines
        self.next = parser.get_event
        self.problems: list[str] = []
        self.anchors: dict[str, tuple[Any, int, list[tuple[KeyPath, int]]]] = {}
        self.open: set[str] = set()
        self.captures: list[tuple[int, list[tuple[KeyPath, int]]]] = []
        self.expanded = 0
        self.size = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def document(self) -> Any:
        if not isinstance(self.next(), yaml.StreamStartEvent):
            raise _Unusual
        event = self.next()
        if isinstance(event, yaml.StreamEndEvent):
            return None
        if not isinstance(event, yaml.DocumentStartEvent):
            raise _Unusual
        data = self.value(self.next(), ())
        if not isinstance(self.next(), yaml.DocumentEndEvent) \
                or not isinstance(self.next(), yaml.StreamEndEvent):
            raise _Unusual  # a second document: the node-tree path says so
        return data

    def _line(self, path: KeyPath, line: int) -> None:
        self.lines[path] = line
        for depth, capture in self.captures:
            capture.append((path[depth:], line))

    def value(self, event: Any, path: KeyPath) -> Any:
        self.size += 1
        kind = type(event)
        if kind is yaml.ScalarEvent:
            result = self._scalar(event)
            if event.anchor is not None:
                self.anchors[event.anchor] = (result, 1, [])
            return result
        if kind is yaml.AliasEvent:
            self.size -= 1
            return self._alias(event, path)
        anchor = event.anchor
        start_size = self.size
        if anchor is not None:
            self.open.add(anchor)
            self.captures.append((len(path), []))
        if kind is yaml.SequenceStartEvent:
            result = self._sequence(path)
        elif kind is yaml.MappingStartEvent:
            result = self._mapping(event, path)
        else:
            raise _Unusual
        if anchor is not None:
            self.open.discard(anchor)
            _, capture = self.captures.pop()
            self.anchors[anchor] = (result, self.size - start_size + 1, capture)
        return result

    def _alias(self, event: Any, path: KeyPath) -> Any:
        name = event.anchor
        if name in self.open:
            raise ConfigError([f"{self.file}:{event.start_mark.line + 1}: an alias refers to "
                               "a collection that contains it"])
        if name not in self.anchors:
            raise _Unusual  # undefined alias: the composer's message names it
        value, size, capture = self.anchors[name]
        self.expanded += size
        self.size += size
        if self.expanded > MAX_ALIAS_NODES:
            raise ConfigError([f"{self.file}:{event.start_mark.line + 1}: aliases (*name) "
                               f"expand to more than {MAX_ALIAS_NODES} values; write the "
                               "values out or use fewer nested aliases"])
        for rel, line in capture:
            self._line((*path, *rel), line)
        return copy.deepcopy(value)

    def _sequence(self, path: KeyPath) -> list[Any]:
        items: list[Any] = []
        while True:
            event = self.next()
            if type(event) is yaml.SequenceEndEvent:
                return items
            self._line((*path, len(items)), event.start_mark.line + 1)
            items.append(self.value(event, (*path, len(items))))

    def _mapping(self, start: Any, path: KeyPath) -> Any:
        out: dict[Any, Any] = {}
        merged: list[Any] = []
        seen: set[str] = set()
        while True:
            key_event = self.next()
            kind = type(key_event)
            if kind is yaml.MappingEndEvent:
                break
            if kind is not yaml.ScalarEvent:
                if kind is yaml.AliasEvent:
                    raise _Unusual
                raise ConfigError([f"{self.file}:{key_event.start_mark.line + 1}: "
                                   f"{dotted(path)}: a key must be a plain value"])
            tag = self._tag(key_event)
            if tag == _MERGE_TAG:
                merged.append(self.value(self.next(), path))
                continue
            name = str(key_event.value)
            child = (*path, name)
            line = key_event.start_mark.line + 1
            if name in seen:
                self.problems.append(f"{self.file}:{line}: {dotted(child)}: this key "
                                     "appears twice; keep one of them")
            seen.add(name)
            key = key_event.value if tag == _STR_TAG else self._construct(key_event, tag)
            out[key] = self.value(self.next(), child)
            self._line(child, line)
        return _merge_keys(merged, out, self.file, start.start_mark.line + 1, path)

    @staticmethod
    def _tag(event: Any) -> str:
        tag = event.tag
        if tag is None or tag == "!":
            return _plain_tag(event.value) if event.implicit[0] else _STR_TAG
        return str(tag)

    def _scalar(self, event: Any) -> Any:
        tag = self._tag(event)
        if tag == _STR_TAG:
            return event.value
        return self._construct(event, tag)

    def _construct(self, event: Any, tag: str) -> Any:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        return _typed_scalar(self.constructor, node, self.file)
