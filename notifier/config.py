"""The YAML configuration: loaded once, checked completely, then handed on as typed objects.

Every problem is reported with the file, the line and the key path, and what is expected,
because the person reading it is editing a YAML file at 2 a.m. and needs to go straight to
the line. All problems are collected and shown together rather than one per attempt.

This module holds the models everyone imports and `load_config`, whose steps are:
read the YAML with the line of every key (`configyaml`) -> substitute `${VAR}`
(`configenv`) -> append the `include:` files' subscriptions, read and substituted alike ->
read `<key>_file` values (`configenv`) -> validate against the models -> cross-check names
and files -> `Config`. Each step words its problems through `configproblems`, which knows
the file and line of every key path.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic_core
from pydantic import Field, ValidationError, field_validator, model_validator

from notifier.channels import CHANNEL_KINDS, channel_config_type
from notifier.configenv import read_secret_files, substitute_env
from notifier.configproblems import ConfigError as ConfigError  # raised by load_config
from notifier.configproblems import (
    KeyPath,
    Locator,
    close_match,
    dotted,
    is_covered,
    missing_problem,
)
from notifier.configyaml import EVENT_PARSER, parse_yaml
from notifier.delivery.channel import ChannelConfig
from notifier.delivery.digest import DeliveryTiming
from notifier.schema import EMAIL, Duration, HttpUrl, Size, StrictModel, StrList, normalise_name

Watch = Literal["posts", "comments", "threads"]


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
    flood_limit: int = Field(50, ge=1, le=100_000)
    """More new entries than this for each interval one poll covers are a flood: each channel
    gets one summary of the newest few, saying how many there were (all are stored). After
    downtime a poll covers every interval nobody read, so catch-up is reported in full."""


class HttpSettings(StrictModel):
    timeout: Duration = 20.0
    max_body: Size = 15 * 1024 * 1024
    concurrency: int = Field(50, ge=1, le=1000)
    per_host: int = Field(2, ge=1, le=50)
    block_private_networks: bool = False
    """Refuse feeds on loopback, private and link-local addresses, also after a redirect or
    a DNS change: for a notifier whose subscriptions other people can add."""


class ClusterSettings(StrictModel):
    """Several nodes on one PostgreSQL (see README, "Several nodes")."""

    lease: Duration = Field(60.0, ge=1.0, le=3600.0)
    """How long a node's claim on a feed or a channel lasts without a heartbeat renewing it:
    a dead or paused node's work is taken over by the others within one lease."""
    node: str | None = Field(None, min_length=1, max_length=64)
    """This node's name in `status` and the logs; by default host name and process id."""


class AdminSettings(StrictModel):
    listen: str | None = None
    """`host:port` of the admin listener (/metrics, /healthz, the status page); off when
    unset. It has no authentication: keep it on loopback or a private network."""

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_listen(value)
        return value


def split_listen(value: str) -> tuple[str, int]:
    """`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464` -> (host, port); ValueError else."""
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port such as 127.0.0.1:9464, got {value!r}")
    return host, int(port)


class Subscription(DeliveryTiming):
    """One thing to watch; from `DeliveryTiming` also `digest`, `timezone`, `quiet_hours`,
    which override the channel's for this subscription's notifications."""

    name: str = Field(min_length=1, max_length=100)
    url: HttpUrl
    watch: Watch = "comments"
    notify: StrList = Field(min_length=1)
    authors: StrList = Field(default_factory=list)
    exclude_authors: StrList = Field(default_factory=list)
    replies_to: StrList = Field(default_factory=list)
    backfill: int | None = Field(None, ge=0, le=1000)
    flood_limit: int | None = Field(None, ge=1, le=100_000)
    interval: Duration | None = None
    templates: dict[str, str] = Field(default_factory=dict)
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
    include: StrList = []
    """Files whose subscriptions are appended; read by the loader before validation."""
    defaults: Defaults = Defaults()
    http: HttpSettings = HttpSettings()
    admin: AdminSettings = AdminSettings()
    cluster: ClusterSettings = ClusterSettings()
    channels: dict[str, dict[str, Any]] = Field(min_length=1)
    subscriptions: list[Subscription] = []
    """Empty only for `add` and `import` (see `load_config`)."""

    @field_validator("state")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """Found here, a mistake is one `check` names; found by the store, it stopped the
        daemon at its start. The value is never repeated: it may hold a password."""
        from notifier.store.db import url_problem  # the store's own rules

        problem = url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        try:
            _ = urlsplit(value).port  # parsing it is the check
        except ValueError:
            raise ValueError("the port of this database URL is not a number from 1 to "
                             "65535") from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        # `defaults:` with nothing under it parses as None; treat it as empty.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in ("defaults", "http", "admin", "cluster")
                         else [] if v is None and k == "subscriptions" else v)
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
    unresolved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Loaded with `require_secrets=False`: channels whose settings need environment
    variables that are not set, with those variables' names. Such a channel is in `channels`
    (with the values left empty) only when it is valid even so; it must not be sent to."""
    admin: AdminSettings = field(default_factory=AdminSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def interval(self, sub: Subscription) -> float:
        return sub.interval if sub.interval is not None else self.defaults.interval

    def backfill(self, sub: Subscription) -> int:
        return sub.backfill if sub.backfill is not None else self.defaults.backfill

    def flood_limit(self, sub: Subscription) -> int:
        return sub.flood_limit if sub.flood_limit is not None else self.defaults.flood_limit

    def rescan(self, sub: Subscription) -> float:
        return sub.rescan if sub.rescan is not None else self.defaults.rescan

    def threads_max_age(self, sub: Subscription) -> float:
        return sub.threads_max_age if sub.threads_max_age is not None \
            else self.defaults.threads_max_age

    def subscription(self, name: str) -> Subscription | None:
        return next((s for s in self.subscriptions if s.name == name), None)

    def subscriptions_hash(self) -> str:
        """A digest of what this node polls and how: nodes sharing a database compare it,
        since two nodes with different subscriptions would notify differently.

        Of the validated values, so that the same subscriptions written differently agree,
        serialised by pydantic in one call (its field order is the models'), and computed
        once per configuration: at 10,000 subscriptions a `model_dump` of each and a sorted
        `json.dumps` took 0.15 s, and both processes of a split run paid it before polling
        (the second forks after it is computed now); this takes 0.015 s."""
        found = self.__dict__.get("_subscriptions_hash")
        if found is None:
            text = pydantic_core.to_json({"defaults": self.defaults,
                                          "subscriptions": list(self.subscriptions)})
            found = hashlib.sha256(text).hexdigest()[:16]
            self.__dict__["_subscriptions_hash"] = found  # frozen: not through setattr
        return str(found)

    def state_url(self) -> str:
        """The database URL; a relative SQLite path is taken from the config file's folder."""
        return resolve_state_url(self.state, self.base_dir)


def resolve_state_url(state: str, base_dir: Path) -> str:
    scheme, sep, rest = state.partition(":///")
    if sep and scheme.lower() in ("sqlite", "sqlite+pysqlite") and not rest.startswith("/"):
        path, mark, query = rest.partition("?")
        if path and path != ":memory:" and not Path(path).is_absolute():
            return f"{scheme}:///{(base_dir / path).resolve()}{mark}{query}"
    return state


# --- loading ------------------------------------------------------------------------------

MAX_CONFIG_BYTES = 16 * 1024 * 1024
"""Largest configuration file read, main or included. Far above any real file (10,000
subscriptions take about 1 MiB); it stops a wrong path (a log, a disk image) from being
read into memory and parsed for minutes."""

MAX_SUBSCRIPTIONS = 100_000
"""Most subscriptions in all files together: ten times what one daemon is meant to poll, so
a generated file that went wrong is refused before it is validated and scheduled."""

_EVENT_PARSER: Any = EVENT_PARSER
"""libyaml's event parser, None where PyYAML lacks libyaml: every file is then read through
the node tree (tests set it None to read through that path)."""


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None, *,
                require_secrets: bool = True, need_subscriptions: bool = True,
                text: str | None = None) -> Config:
    """Read, substitute, validate and cross-check the file and the files it includes; raise
    ConfigError listing all problems.

    With `require_secrets=False` (for commands that read the state and send nothing, run
    from a shell without the service's environment), a `${VAR}` that is not set inside
    `channels:` is no problem: the channels that need it are listed in `Config.unresolved`.
    With `need_subscriptions=False` (`add`, `import`: the way to write the first one), a
    file without subscriptions is valid. `text` checks what is about to be written at
    `path`, before it is: names in it are relative to `path`, as when it is read.
    """
    file = Path(path)
    env = os.environ if environ is None else environ
    data, lines = parse_yaml(_read(file) if text is None else text, file, _EVENT_PARSER)
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1: the file must be a mapping with keys such as "
                           "'channels' and 'subscriptions'"])
    where = Locator(file, lines, data, _RawConfig)
    missing = substitute_env(data, env, where, stand_in=not require_secrets)
    if not require_secrets:
        tolerated = {key: names for key, names in missing.items()
                     if key[:1] == ("channels",) and len(key) > 2}
        missing = {key: names for key, names in missing.items() if key not in tolerated}
    else:
        tolerated = {}
    # Missing variables do not stop the checks: every other mistake is reported with them,
    # not in a second round after the variables are set.
    problems = [missing_problem(where, key, names, env) for key, names in missing.items()]
    include_problems = _include(file, data, lines, env, where)
    include_problems += read_secret_files(data, file.parent, where,
                                           stand_in=not require_secrets)
    if include_problems:
        raise ConfigError(sorted(problems + include_problems, key=where.line_of))
    covered = {**missing, **tolerated}
    subs = data.get("subscriptions")
    if isinstance(subs, list) and len(subs) > MAX_SUBSCRIPTIONS:
        raise ConfigError([f"{file}: {len(subs)} subscriptions in all; at most "
                           f"{MAX_SUBSCRIPTIONS} are allowed: split them over several "
                           "notifier instances"])
    raw: _RawConfig | None = None
    try:
        raw = _RawConfig.model_validate(data)
    except ValidationError as exc:
        problems += [where.describe_error(err) for err in exc.errors()
                     if not is_covered(where.error_path(err), covered)]
    raw_channels = data.get("channels")
    channels: dict[str, ChannelConfig] = {}
    unresolved: dict[str, tuple[str, ...]] = {}
    if isinstance(raw_channels, dict):
        channels, channel_problems = _validate_channels(
            {k: v for k, v in raw_channels.items() if isinstance(v, dict)}, where, covered)
        problems += channel_problems
        for key, names in tolerated.items():
            name = str(key[1])
            unresolved[name] = tuple(sorted({*unresolved.get(name, ()), *names}))
    if raw is not None:
        if need_subscriptions and not raw.subscriptions:
            problems.append(where.problem(
                ("subscriptions",), "none yet: add one with `notifier add URL -c "
                                    f"{file.name}` or `notifier import FILE.opml -c "
                                    f"{file.name}`"))
        problems += _cross_check(raw, channels, file.parent, where)
    if problems or raw is None:
        raise ConfigError(sorted(problems, key=where.line_of))
    return Config(path=file, state=raw.state, defaults=raw.defaults, http=raw.http,
                  channels=channels, subscriptions=tuple(raw.subscriptions),
                  unresolved=unresolved, admin=raw.admin, cluster=raw.cluster)


def _read(file: Path) -> str:
    """The file's text, refusing a file larger than MAX_CONFIG_BYTES before reading it all."""
    try:
        with file.open("rb") as stream:
            content = stream.read(MAX_CONFIG_BYTES + 1)
        if len(content) > MAX_CONFIG_BYTES:
            raise ConfigError([f"{file}: the file is larger than {MAX_CONFIG_BYTES} bytes, "
                               "the most a configuration file may hold; is it the right "
                               "file?"])
        return content.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{file}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{file}: cannot read it: {exc}"]) from None


def _include(file: Path, data: dict[Any, Any], lines: dict[KeyPath, int],
             env: Mapping[str, str], where: Locator) -> list[str]:
    """Append the subscriptions of the `include:` files to `data`, their lines to `lines`
    and their origins to `where`, so that later errors name the included file."""
    patterns = data.get("include")
    if patterns is None:
        return []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        return [where.problem(("include",), "expected a file pattern or a list of them, "
                                            "such as subscriptions.d/ or subs/*.yaml")]
    problems: list[str] = []
    files: list[Path] = []
    for index, pattern in enumerate(patterns):
        matched = _expand(file.parent, pattern)
        if not matched:
            problems.append(where.problem(
                ("include", index) if isinstance(data["include"], list) else ("include",),
                f"{pattern!r} matches no file (relative to {file.parent.name or '.'}/; a "
                "folder means its *.yaml and *.yml files)"))
        files += [m for m in matched if m not in files and m.resolve() != file.resolve()]
    if problems:
        return problems
    subs = data.get("subscriptions")
    if subs is None:
        subs = data["subscriptions"] = []
    if not isinstance(subs, list):
        return []  # validation reports the main file's mistake
    for rank, included in enumerate(files, start=1):
        inc_data, inc_lines = parse_yaml(_read(included), included, _EVENT_PARSER)
        inc_where = Locator(included, inc_lines, inc_data, _RawConfig)
        if not isinstance(inc_data, dict) or not isinstance(inc_data.get("subscriptions"),
                                                            list):
            problems.append(f"{included}:1: an included file must be a mapping with one key, "
                            "'subscriptions', holding a list")
            continue
        extra = [k for k in inc_data if k != "subscriptions"]
        problems += [inc_where.problem((str(k),), "an included file may only hold "
                                                  "'subscriptions'; put it in the main file")
                     for k in extra]
        problems += [missing_problem(inc_where, path, names, env)
                     for path, names in substitute_env(inc_data, env, inc_where).items()]
        where.adopt(inc_where, rank)
        offset = len(subs)
        subs += inc_data["subscriptions"]
        where.add_file(included, rank, offset, len(inc_data["subscriptions"]))
        for key, line in inc_lines.items():
            if len(key) >= 2 and key[0] == "subscriptions" and isinstance(key[1], int):
                lines[("subscriptions", key[1] + offset, *key[2:])] = line
        if len(subs) > MAX_SUBSCRIPTIONS:
            break  # the caller refuses the total; parse no more
    return problems


def _expand(base: Path, pattern: str) -> list[Path]:
    """Files named by one `include:` entry: a folder's YAML files or a glob's matches,
    sorted, so the order of subscriptions does not depend on the file system."""
    target = base / pattern
    if target.is_dir():
        return sorted(p for p in target.iterdir()
                      if p.suffix in (".yaml", ".yml") and p.is_file())
    out: list[Path] = []
    for match in sorted(glob.glob(str(target), recursive=True)):
        found = Path(match)
        if found.is_dir():
            out += _expand(found, ".")
        elif found.is_file():
            out.append(found)
    return out


def _validate_channels(raw: Mapping[str, dict[str, Any]], where: Locator,
                       covered: Mapping[KeyPath, object]
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
            problems += [where.describe_error(err, prefix=path) for err in exc.errors()
                         if not is_covered(where.error_path(err, path), covered)]
    return channels, problems


def _cross_check(raw: _RawConfig, channels: Mapping[str, ChannelConfig], base_dir: Path,
                 where: Locator) -> list[str]:
    """Checks that span sections: names that refer to other names, files that must exist."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for index, sub in enumerate(raw.subscriptions):
        path: KeyPath = ("subscriptions", index)
        if sub.name in seen:
            first = ("subscriptions", seen[sub.name])
            other = dotted(where.shown_path(first))
            if where.file_of(first) != where.file_of(path):
                other += f" in {where.location(first + ('name',))}"
            problems.append(where.problem(
                path + ("name",), f"subscription name {sub.name!r} is already used by "
                                  f"{other}; names must be unique"))
        seen.setdefault(sub.name, index)
        for position, target in enumerate(sub.notify):
            if target not in raw.channels:
                known = ", ".join(raw.channels) or "none"
                hint = close_match(target, list(raw.channels), list_all=False)
                problems.append(where.problem(
                    path + ("notify", position),
                    f"no channel named {target!r}{hint or f'; channels defined: {known}'}"))
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
            if re.fullmatch(r"[^@\s]+@[^@\s]+", text) and not EMAIL.fullmatch(text):
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
