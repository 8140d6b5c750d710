"""The YAML configuration: loaded once, checked completely, then handed on as typed objects.

Every problem is reported with the file, the line and the key path, and what is expected,
because the person reading it is editing a YAML file at 2 a.m. and needs to go straight to
the line. All problems are collected and shown together rather than one per attempt.

`${VAR}` and `${VAR:-default}` are substituted inside parsed string values only, so an
environment variable can never add keys or change the YAML structure.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from notifier.channels import CHANNEL_KINDS, channel_config_type
from notifier.delivery.channel import ChannelConfig
from notifier.delivery.digest import DeliveryTiming
from notifier.schema import Duration, HttpUrl, Size, StrictModel, StrList, normalise_name

Watch = Literal["posts", "comments", "threads"]
KeyPath = tuple[str | int, ...]


class ConfigError(Exception):
    """One or more problems in a configuration file; `str()` lists them, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Defaults(StrictModel):
    interval: Duration = 600.0
    jitter: float = Field(0.1, ge=0, le=0.5)
    """Each poll is moved by up to this fraction of the interval, so feeds spread out."""
    backfill: int = Field(0, ge=0, le=1000)
    """How many of the newest existing entries a new subscription notifies on its first poll."""
    rescan: Duration = 6 * 3600.0
    """How often a comment feed is read in full (no validators, REST listing): late approvals."""
    threads_max_age: Duration = 30 * 86400.0
    """`watch: threads` follows the comment feeds of posts younger than this."""


class HttpSettings(StrictModel):
    timeout: Duration = 20.0
    max_body: Size = 15 * 1024 * 1024
    concurrency: int = Field(50, ge=1, le=1000)
    per_host: int = Field(2, ge=1, le=50)
    block_private_networks: bool = False
    """Refuse feeds on loopback, private and link-local addresses, also after a redirect or
    a DNS change: for a notifier whose subscriptions other people can add."""


class Subscription(DeliveryTiming):
    """One thing to watch; from `DeliveryTiming` also `digest`, `timezone`, `quiet_hours`,
    which override the channel's for this subscription's notifications."""

    name: str = Field(min_length=1, max_length=100)
    url: HttpUrl
    watch: Watch = "comments"
    notify: StrList = Field(min_length=1)
    authors: StrList = []
    exclude_authors: StrList = []
    replies_to: StrList = []
    backfill: int | None = Field(None, ge=0, le=1000)
    interval: Duration | None = None
    templates: dict[str, str] = {}
    include_subthread: bool = False
    """With replies_to: also replies to those replies, however deep."""
    exclude_self: bool = True
    """Never report comments written by the replies_to people themselves."""
    notify_edits: bool = False
    rescan: Duration | None = None
    threads_max_age: Duration | None = None

    @field_validator("name")
    @classmethod
    def _name_is_plain(cls, value: str) -> str:
        if not re.fullmatch(r"[\w.@+-]+(?: [\w.@+-]+)*", value):
            raise ValueError(
                "a subscription name may hold letters, digits, spaces and . _ - @ + only"
            )
        return value

    def wants_author(self, author: str) -> bool:
        name = normalise_name(author)
        if self.authors and name not in {normalise_name(a) for a in self.authors}:
            return False
        return name not in {normalise_name(a) for a in self.exclude_authors}


class _RawConfig(StrictModel):
    """The document's shape; channels are checked separately against their kind's type."""

    state: str = "sqlite:///notifier.db"
    defaults: Defaults = Defaults()
    http: HttpSettings = HttpSettings()
    channels: dict[str, dict[str, Any]] = Field(min_length=1)
    subscriptions: list[Subscription] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        # `defaults:` with nothing under it parses as None; treat it as empty.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ("defaults", "http") else v)
                    for k, v in data.items()}
        return data


@dataclass(frozen=True)
class Config:
    """A configuration that has passed every check."""

    path: Path
    state: str
    defaults: Defaults
    http: HttpSettings
    channels: Mapping[str, ChannelConfig]
    subscriptions: tuple[Subscription, ...]

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def interval(self, sub: Subscription) -> float:
        return sub.interval if sub.interval is not None else self.defaults.interval

    def backfill(self, sub: Subscription) -> int:
        return sub.backfill if sub.backfill is not None else self.defaults.backfill

    def rescan(self, sub: Subscription) -> float:
        return sub.rescan if sub.rescan is not None else self.defaults.rescan

    def threads_max_age(self, sub: Subscription) -> float:
        return sub.threads_max_age if sub.threads_max_age is not None \
            else self.defaults.threads_max_age

    def subscription(self, name: str) -> Subscription | None:
        return next((s for s in self.subscriptions if s.name == name), None)

    def state_url(self) -> str:
        """The database URL; a relative SQLite path is taken from the config file's folder."""
        return resolve_state_url(self.state, self.base_dir)


def resolve_state_url(state: str, base_dir: Path) -> str:
    prefix = "sqlite:///"
    if state.startswith(prefix) and not state.startswith("sqlite:////"):
        rest = state[len(prefix):]
        if rest and rest != ":memory:" and not Path(rest).is_absolute():
            return prefix + str((base_dir / rest).resolve())
    return state


# --- loading ------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, substitute, validate and cross-check one file; raise ConfigError listing all."""
    file = Path(path)
    env = os.environ if environ is None else environ
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read it: {exc}"]) from None
    data, lines = _parse_yaml(text, file)
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: the file must be a mapping with keys such as "
                           "'channels' and 'subscriptions'"])
    where = _Locator(file, lines, data)
    problems = _substitute_env(data, env, where)
    if problems:
        raise ConfigError(problems)
    raw: _RawConfig | None = None
    try:
        raw = _RawConfig.model_validate(data)
    except ValidationError as exc:
        problems = [where.describe_error(err) for err in exc.errors()]
    raw_channels = data.get("channels")
    channels: dict[str, ChannelConfig] = {}
    if isinstance(raw_channels, dict):
        channels, channel_problems = _validate_channels(
            {k: v for k, v in raw_channels.items() if isinstance(v, dict)}, where)
        problems += channel_problems
    if raw is not None:
        problems += _cross_check(raw, channels, file.parent, where)
    if problems or raw is None:
        raise ConfigError(sorted(problems, key=where.line_of))
    return Config(path=file, state=raw.state, defaults=raw.defaults, http=raw.http,
                  channels=channels, subscriptions=tuple(raw.subscriptions))


def _parse_yaml(text: str, file: Path) -> tuple[Any, dict[KeyPath, int]]:
    """Parse once into plain values plus the line of every key and list item."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        context = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            context = f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise ConfigError([f"{file}{line}: not valid YAML: {exc.problem or exc}{context}"]
                          ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{file}: not valid YAML: {exc}"]) from None
    lines: dict[KeyPath, int] = {}
    problems: list[str] = []
    if node is not None:
        _record_lines(node, (), lines, problems, file)
    if problems:
        raise ConfigError(problems)
    return data, lines


def _record_lines(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int],
                  problems: list[str], file: Path) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen and key != "<<":
                problems.append(f"{file}:{key_node.start_mark.line + 1}: "
                                f"{_dotted(path + (key,))}: this key appears twice; "
                                "keep one of them")
            seen.add(key)
            lines[path + (key,)] = key_node.start_mark.line + 1
            _record_lines(value_node, path + (key,), lines, problems, file)
            lines[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, path + (index,), lines, problems, file)


_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute_env(data: Any, env: Mapping[str, str], where: _Locator) -> list[str]:
    problems: list[str] = []

    def replace_in(text: str, path: KeyPath) -> str:
        def one(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(where.problem(
                path, f"environment variable {name} is not set; set it, or write "
                      f"${{{name}:-default}} to give a default"))
            return ""
        return _ENV_REF.sub(one, text)

    def walk(value: Any, path: KeyPath) -> Any:
        if isinstance(value, str):
            return replace_in(value, path)
        if isinstance(value, dict):
            for key in list(value):
                value[key] = walk(value[key], path + (str(key),))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                value[index] = walk(item, path + (index,))
        return value

    walk(data, ())
    return problems


def _validate_channels(raw: Mapping[str, dict[str, Any]], where: _Locator
                       ) -> tuple[dict[str, ChannelConfig], list[str]]:
    channels: dict[str, ChannelConfig] = {}
    problems: list[str] = []
    for name, body in raw.items():
        path: KeyPath = ("channels", name)
        kind = body.get("type")
        if kind is None:
            problems.append(where.problem(
                path, f"missing key 'type': say which kind of channel this is "
                      f"({', '.join(CHANNEL_KINDS)})"))
            continue
        try:
            config_type = channel_config_type(str(kind))
        except KeyError:
            problems.append(where.problem(
                path + ("type",), f"unknown channel type {kind!r}; "
                                  f"known types: {', '.join(CHANNEL_KINDS)}"))
            continue
        try:
            channels[name] = config_type.model_validate(body)
        except ValidationError as exc:
            problems += [where.describe_error(err, prefix=path) for err in exc.errors()]
    return channels, problems


def _cross_check(raw: _RawConfig, channels: Mapping[str, ChannelConfig], base_dir: Path,
                 where: _Locator) -> list[str]:
    """Checks that span sections: names that refer to other names, files that must exist."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, sub in enumerate(raw.subscriptions):
        path: KeyPath = ("subscriptions", index)
        if sub.name in seen:
            problems.append(where.problem(
                path + ("name",), f"subscription name {sub.name!r} is already used by "
                                  f"subscriptions[{seen[sub.name]}]; names must be unique"))
        seen.setdefault(sub.name, index)
        for position, target in enumerate(sub.notify):
            if target not in raw.channels:
                known = ", ".join(raw.channels) or "none"
                problems.append(where.problem(
                    path + ("notify", position),
                    f"no channel named {target!r}; channels defined: {known}"))
        if sub.watch == "posts" and sub.replies_to:
            problems.append(where.problem(
                path + ("replies_to",), "replies_to needs watch: comments or threads (posts "
                                        "have no parents)"))
        if sub.include_subthread and not sub.replies_to:
            problems.append(where.problem(
                path + ("include_subthread",), "include_subthread needs replies_to: whose "
                                               "subthread?"))
        if sub.watch == "posts" and sub.notify_edits:
            problems.append(where.problem(
                path + ("notify_edits",), "notify_edits is for comments; it needs watch: "
                                          "comments or threads"))
        if sub.threads_max_age is not None and sub.watch != "threads":
            problems.append(where.problem(
                path + ("threads_max_age",), "threads_max_age needs watch: threads"))
        for position, person in enumerate(sub.replies_to):
            text = person.strip()
            if re.fullmatch(r"[^@\s]+@[^@\s]+", text) and not _EMAIL.fullmatch(text):
                problems.append(where.problem(
                    path + ("replies_to", position),
                    f"{person!r} is neither a name nor an email address; an email is matched "
                    "by its Gravatar hash, a URL by the commenter's website"))
        for slot, file in sub.templates.items():
            if not (base_dir / file).is_file():
                problems.append(where.problem(path + ("templates", slot),
                                              f"template file {file!r} does not exist"))
    for name, channel in channels.items():
        for slot, file in channel.templates.items():
            if not (base_dir / file).is_file():
                problems.append(where.problem(("channels", name, "templates", slot),
                                              f"template file {file!r} does not exist"))
    return problems


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class _Locator:
    """Turns a key path into `file:line: path: message`, the line of the nearest known key."""

    def __init__(self, file: Path, lines: Mapping[KeyPath, int], data: Any) -> None:
        self.file = file
        self.lines = lines
        self.data = data

    def problem(self, path: KeyPath, message: str) -> str:
        line = self._line(path)
        return f"{self.file}:{line}: {_dotted(path)}: {message}" if line else \
            f"{self.file}: {_dotted(path)}: {message}"

    def line_of(self, problem: str) -> int:
        """Sort key: problems are listed in the order of the file's lines."""
        rest = problem[len(str(self.file)) + 1:]
        number = rest.split(":", 1)[0]
        return int(number) if number.isdigit() else 0

    def _line(self, path: KeyPath) -> int | None:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def describe_error(self, err: Any, prefix: KeyPath = ()) -> str:
        path = self._real_path(prefix + tuple(err["loc"]))
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = self._value_at(path[:-1])
            hint = ""
            if isinstance(parent, dict):
                hint = _close_match(str(path[-1]), self._allowed_keys(path[:-1], prefix))
            return self.problem(path, f"unknown key{hint}")
        if kind == "missing":
            return self.problem(path, "this required key is missing")
        message = str(err["msg"])
        message = message.removeprefix("Value error, ")
        if kind in ("literal_error", "enum"):
            message += f" (got {err.get('input')!r})"
        return self.problem(path, message)

    def _allowed_keys(self, path: KeyPath, prefix: KeyPath) -> list[str]:
        """Field names of the model at `path`, to suggest the key the user meant."""
        model: Any = _RawConfig
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


def _close_match(word: str, options: list[str]) -> str:
    import difflib

    best = difflib.get_close_matches(word, options, n=1)
    if best:
        return f"; did you mean {best[0]!r}?"
    if options:
        return f"; expected one of: {', '.join(options)}"
    return ""

