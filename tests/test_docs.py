"""The documentation an operator reads says what the program does: every command in the
README's Commands table (and each option it takes), and docs/operations.md written out."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from notifier.commands import COMMANDS, build_parser

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
    common = {"--help", "--config", "--verbose", "--quiet", "--log-format"}
    for name, sub in subparsers.choices.items():
        options = {o for action in sub._actions for o in action.option_strings
                   if o.startswith("--")} - common
        missing = {o for o in options if o not in rows[name]}
        assert not missing, f"README's row for `notifier {name}` does not name {missing}"


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
