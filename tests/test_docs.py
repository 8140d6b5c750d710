"""The documentation an operator reads says what the program does: every command in the
README's Commands table (and each option it takes), and docs/operations.md written out."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import textwrap
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from notifier.channels import CHANNEL_KINDS, channel_config_type
from notifier.commands import COMMANDS, build_parser, main
from notifier.config import _RawConfig, load_config
from notifier.configenv import SECRET_KEYS
from notifier.delivery.channel import ChannelConfig
from notifier.delivery.digest import DeliveryTiming

ROOT = Path(__file__).resolve().parent.parent


def _commands_table() -> dict[str, str]:
    """README's Commands table: command name -> the row's first cell."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        match = re.match(r"\| `notifier ([\w-]+)([^`]*)` \|", line)
        if match:
            rows.setdefault(match.group(1), "")
            rows[match.group(1)] += match.group(2)
    return rows


def test_readme_commands_table_lists_every_command_and_its_options() -> None:
    rows = _commands_table()
    assert set(rows) == {command.name for command in COMMANDS}
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    common = {"--help", "--config", "--verbose", "--quiet", "--log-format", "--version"}
    for name, sub in subparsers.choices.items():
        options = {o for action in sub._actions for o in action.option_strings
                   if o.startswith("--")} - common
        missing = {o for o in options if o not in rows[name]}
        assert not missing, f"README's row for `notifier {name}` does not name {missing}"
        named = set(re.findall(r"--[\w-]+", rows[name]))
        unknown = named - options
        assert not unknown, f"README's row for `notifier {name}` names {unknown}, " \
                            "which its --help does not have"


def _common_options_paragraph() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (paragraph,) = [p for p in text.split("\n\n") if p.startswith("`-c` defaults to")]
    return " ".join(paragraph.split())


def test_readme_common_options_are_in_every_help() -> None:
    """The paragraph after the Commands table names the options every command takes."""
    paragraph = _common_options_paragraph()
    assert "before or after the command" in paragraph
    named = set(re.findall(r"`(-{1,2}[a-z][\w-]*)", paragraph)) - {"-vv", "--once"}
    assert named == {"-c", "-v", "-q", "--log-format", "--version"}
    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in [("notifier", parser), *subparsers.choices.items()]:
        options = {o for action in sub._actions for o in action.option_strings}
        expected = named - ({"-c"} if name == "demo" else set())
        assert expected <= options, f"`{name} --help` lacks {expected - options}"


@pytest.mark.parametrize("argv", [
    ["-q", "check", "-c", "{example}"],
    ["check", "-q", "-c", "{example}"],
    ["-c", "{example}", "-q", "check"],
    ["--log-format", "json", "-q", "check", "-c", "{example}"],
])
def test_common_options_work_before_or_after_the_command(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    example = str(ROOT / "config.example.yaml")
    assert main([a.format(example=example) for a in argv]) == 0
    assert capsys.readouterr().out == ""  # -q: problems only, and there are none


@pytest.mark.parametrize("argv", [["--version"], ["check", "--version"]])
def test_version_before_or_after_the_command(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    assert re.fullmatch(r"notifier \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_config_defaults_to_the_environment_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no notifier.yaml here
    monkeypatch.setenv("NOTIFIER_CONFIG", str(ROOT / "config.example.yaml"))
    assert main(["check"]) == 0
    assert "config.example.yaml: OK" in capsys.readouterr().out
    monkeypatch.delenv("NOTIFIER_CONFIG")
    assert main(["check"]) == 2
    assert "notifier.yaml: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("section", ["Metrics", "Health check", "Status page", "Reload",
                                     "Stopping, signals and systemd", "Logs",
                                     "Backup of the state", "Upgrades", "The container"])
def test_operations_guide_writes_out_each_section(section: str) -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    match = re.search(rf"^#+ {re.escape(section)}\n(.*?)(?=^## |\Z)", text,
                      re.MULTILINE | re.DOTALL)
    assert match is not None, f"no section {section!r}"
    body = match.group(1)
    assert "<!--" not in body and len(body.split()) > 40, f"{section!r} is not written out"


# --- the configuration's documentation and its schema -------------------------------------

KeyPath = tuple[str, ...]


def _yaml_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def _readme_full_shape() -> str:
    """The block after "The full shape:" in README's Configuration section."""
    (block,) = [b for b in _yaml_blocks() if b.startswith("state:")]
    return block


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _schema_keys(model: type[BaseModel], path: KeyPath = ()) -> set[KeyPath]:
    """Every key the model accepts, nested models' keys under theirs, as YAML spells them."""
    keys: set[KeyPath] = set()
    for name, info in model.model_fields.items():
        key = path + (info.alias or name,)
        keys.add(key)
        for inner in _models_in(info.annotation):
            keys |= _schema_keys(inner, key)
    return keys


def _documented_keys(value: object, path: KeyPath = ()) -> set[KeyPath]:
    """The key paths of parsed YAML; a channel stands under its kind, a channel setting
    that every kind takes (from ChannelConfig) under `*`, list items under their list."""
    keys: set[KeyPath] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            here = path + (str(key),)
            if path == ("channels",) and isinstance(inner, dict):
                for setting, body in inner.items():
                    kind = "*" if setting in ChannelConfig.model_fields else inner.get("type")
                    where = ("channels", str(kind), str(setting))
                    keys |= {where} | _documented_keys(body, where)
                continue
            keys |= {here} | _documented_keys(inner, here)
    elif isinstance(value, list):
        for item in value:
            keys |= _documented_keys(item, path)
    return keys


def _all_schema_keys() -> set[KeyPath]:
    keys = {k for k in _schema_keys(_RawConfig) if k[:1] != ("channels",)}
    keys.add(("channels",))
    common = _schema_keys(ChannelConfig)
    keys |= {("channels", "*", *k) for k in common}
    for kind in CHANNEL_KINDS:
        keys |= {("channels", kind, *k) for k in _schema_keys(channel_config_type(kind))
                 if k[:1] not in {c[:1] for c in common}}
    return keys


def _all_documented_keys() -> set[KeyPath]:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    keys = _documented_keys(example) | _documented_keys(yaml.safe_load(_readme_full_shape()))
    for block in _yaml_blocks():
        if block.startswith("include:"):
            keys |= _documented_keys(yaml.safe_load(block))
        elif block.startswith("    "):  # "Every channel (and every subscription) accepts:"
            settings = _documented_keys(yaml.safe_load(textwrap.dedent(block)))
            keys |= {("channels", "*", *k) for k in settings}
            if all(k[0] in DeliveryTiming.model_fields for k in settings):
                keys |= {("subscriptions", *k) for k in settings}
    return keys


def test_every_configuration_key_is_documented() -> None:
    undocumented = _all_schema_keys() - _all_documented_keys()
    assert not undocumented, (
        "keys the configuration accepts that neither config.example.yaml nor README's "
        f"full shape shows: {sorted('.'.join(k) for k in undocumented)}")


def test_no_documented_key_is_refused() -> None:
    unknown = _all_documented_keys() - _all_schema_keys()
    assert not unknown, f"documented keys the configuration refuses: {sorted(unknown)}"


def test_readme_full_shape_is_a_valid_configuration(tmp_path: Path) -> None:
    text = _readme_full_shape()
    path = tmp_path / "notifier.yaml"
    path.write_text(text, encoding="utf-8")
    variables = set(re.findall(r"\$\{(\w+)\}", text))
    environ = {name: f"https://hooks.example.org/{name}" for name in variables}
    environ["TELEGRAM_BOT_TOKEN"] = "123456789:AAE" + "x" * 30
    environ["PUSHOVER_URL"] = "json://127.0.0.1:9/"  # a form Apprise knows
    config = load_config(path, environ)
    assert {c.type for c in config.channels.values()} == set(CHANNEL_KINDS)


# --- the README's first screen --------------------------------------------------------------


def test_readme_first_screen_gives_two_commands_that_need_only_python() -> None:
    first_screen = (ROOT / "README.md").read_text(encoding="utf-8").split("\n---\n", 1)[0]
    (block,) = re.findall(r"^```sh\n(.*?)^```", first_screen, re.MULTILINE | re.DOTALL)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["python3 scripts/dev.py run", "python3 scripts/dev.py test"]
    assert "only Python 3.11 or newer" in first_screen
    assert "config.example.yaml" in first_screen and "notifier.db" in first_screen


def test_dev_script_runs_on_the_bare_interpreter_and_names_both_commands() -> None:
    """Started with `-I -S` (no site-packages, no environment): what a fresh machine has."""
    done = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "scripts" / "dev.py")],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "scripts/dev.py run" in done.stderr and "scripts/dev.py test" in done.stderr


def test_the_example_runs_without_any_variable_set_and_keeps_its_state_beside_it(
        tmp_path: Path) -> None:
    """`dev.py run` starts the daemon on config.example.yaml from a fresh clone: no
    variable set, no server to run, state in an SQLite file beside the example."""
    copy = tmp_path / "config.example.yaml"
    copy.write_text((ROOT / "config.example.yaml").read_text(encoding="utf-8"),
                    encoding="utf-8")
    config = load_config(copy, environ={})
    assert config.state_url() == f"sqlite:///{(tmp_path / 'notifier.db').resolve()}"
    notified = {name for sub in config.subscriptions for name in sub.notify}
    assert {config.channels[name].type for name in notified} == {"console"}


def test_every_channel_example_in_the_templates_guide_is_valid(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
    examples = [yaml.safe_load(block) for block in
                re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)]
    channels = {name: body for example in examples if isinstance(example, dict)
                for name, body in example.items()
                if isinstance(body, dict) and "type" in body}
    assert {body["type"] for body in channels.values()} >= {"matrix", "telegram", "ntfy"}
    path = tmp_path / "notifier.yaml"
    path.write_text(yaml.safe_dump({"channels": channels, "subscriptions": [
        {"name": "s", "url": "https://blog.example.org/", "notify": list(channels)}]}),
        encoding="utf-8")
    environ = {"MATRIX_TOKEN": "syt_token", "NTFY_TOKEN": "tk_token",
               "TELEGRAM_BOT_TOKEN": "123456789:AAE" + "x" * 30,
               "PUSHOVER_URL": "json://127.0.0.1:9/", "GOTIFY_TOKEN": "token"}
    assert set(load_config(path, environ).channels) == set(channels)


def test_the_file_forms_documented_are_the_ones_the_loader_reads() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (row,) = [line for line in readme.splitlines() if line.startswith("| secrets in files |")]
    assert set(re.findall(r"`(\w+)_file`", row)) == SECRET_KEYS
    example = " ".join((ROOT / "config.example.yaml").read_text(encoding="utf-8").split())
    listed = re.search(r"any (.+?) setting has a \*_file form", example)
    assert listed is not None
    keys = set(re.split(r"[\s#,]+|\bor\b", listed.group(1))) - {""}
    assert keys == SECRET_KEYS
