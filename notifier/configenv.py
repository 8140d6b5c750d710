"""Values a configuration takes from outside its file: `${VAR}` and `<key>_file`.

A configuration file is shared, committed, shown in a bug report; the passwords and tokens
it needs are not. They come from the service's environment, as variables (`${VAR}`,
`${VAR:-default}`, `$$` for a `$`) or as files (`password_file: /run/credentials/...`,
what systemd's LoadCredential= and Docker secrets provide). Both are applied to the parsed
values, never to the text, so that an environment variable can never add keys or change the
YAML's structure, and a missing one is a problem at the value's own line, reported with
every other mistake rather than one at a time. Commands that send nothing (`status`, `add`)
run from a shell without the service's environment: for them a channel's missing value gets
a stand-in (`unset-NAME`) that keeps the channel valid enough to describe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from notifier.configproblems import KeyPath, Locator

SECRET_KEYS = frozenset({"password", "token", "access_token", "secret", "url", "state"})
"""Keys whose value may come from a file instead: `password_file: /run/credentials/...`
(systemd's LoadCredential=, Docker secrets). The file's text, without a final newline, is
the value; the file is read once, when the configuration is."""
MAX_SECRET_FILE_BYTES = 64 * 1024


def read_secret_files(data: Any, base_dir: Path, where: Locator, *,
                      stand_in: bool = False) -> list[str]:
    """Replace each `<key>_file` (key in SECRET_KEYS) by `<key>` holding the file's text.

    With `stand_in` (read-only commands), a channel's unreadable file gets a stand-in
    value, as an unset variable does: `status` needs no channel secret."""
    problems: list[str] = []

    def walk(value: Any, path: KeyPath) -> None:
        if isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, path + (index,))
            return
        if not isinstance(value, dict):
            return
        for key in list(value):
            name = str(key)
            here = path + (name,)
            target = name.removesuffix("_file")
            if name.endswith("_file") and target in SECRET_KEYS:
                source = value[key]
                if target in value:
                    problems.append(where.problem(here, f"give {target} or {name}, not both"))
                    continue
                if not isinstance(source, str) or not source:
                    problems.append(where.problem(here, "must be the path of a file"))
                    continue
                secret = _secret_from(base_dir / source)
                if isinstance(secret, Exception) and stand_in and path[:1] == ("channels",):
                    secret = f"unset-{name}"
                if isinstance(secret, Exception):
                    problems.append(where.problem(here, f"cannot read {source}: {secret}"))
                    continue
                del value[key]
                value[target] = secret
            else:
                walk(value[key], here)

    walk(data, ())
    return problems


def _secret_from(file: Path) -> str | Exception:
    try:
        with file.open("rb") as stream:
            content = stream.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        return Exception(exc.strerror or type(exc).__name__)
    if len(content) > MAX_SECRET_FILE_BYTES:
        return Exception(f"larger than {MAX_SECRET_FILE_BYTES // 1024} KiB; is it the right file?")
    try:
        return content.decode("utf-8").removesuffix("\n").removesuffix("\r")
    except UnicodeDecodeError:
        return Exception("not UTF-8 text")


_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(data: Any, env: Mapping[str, str], where: Locator, *,
                   stand_in: bool = False) -> dict[KeyPath, list[str]]:
    """Substitute in place; return the paths of values whose variables are not set and the
    variables' names. Those are left empty, or with `stand_in` (channel settings loaded
    without secrets) given the text `unset-NAME`, which keeps a password or a URL's token
    valid, so the channel can still be described and rendered."""
    missing: dict[KeyPath, list[str]] = {}

    def replace_in(text: str, path: KeyPath) -> str:
        if "$" not in text:  # nearly every value: no pattern to run
            return text

        def one(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            missing.setdefault(path, []).append(name)
            return f"unset-{name}" if stand_in and path[:1] == ("channels",) else ""
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
    return missing
