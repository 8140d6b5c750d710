"""Configuration mistakes as a person makes them, answered at the line they wrote."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from notifier.cli import main
from notifier.config import ConfigError, load_config
from notifier.match import People

GOOD = """\
channels:
  mail:
    type: email
    from: notifier@localhost
    to: [root@localhost]
    smtp: {host: 127.0.0.1, security: none, username: me, password: "${SMTP_PASSWORD}"}
  hook:
    type: webhook
    url: "https://hooks.example.org/${HOOK_TOKEN}"
subscriptions:
  - name: blog
    url: https://blog.example.org/
    notify: [mail, hook]
"""


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str],
          *args: str) -> tuple[int, str, str]:
    path = tmp_path / "notifier.yaml"
    path.write_text(text, encoding="utf-8")
    code = main(["check", *args, "-c", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("broken", "line", "hint"), [
    # a key without its colon: the parser notices on the next line
    (GOOD.replace("    url: https://blog", "    url https://blog"), 12, "has no ':' after its key"),
    # one key indented less than its siblings
    (GOOD.replace("    notify: [mail, hook]", "   notify: [mail, hook]"), 13,
     "the indentation of this line does not fit"),
    (GOOD.replace('    url: "https://hooks', '      url: "https://hooks'), 9,
     "the indentation of this line does not fit"),
    (GOOD.replace("to: [root@localhost]", "to: [root@localhost"), 5, "[ list ]"),
    (GOOD.replace("    type: webhook", "\ttype: webhook"), 8, "tab"),
])
def test_yaml_mistakes_are_reported_at_the_line_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        broken: str, line: int, hint: str) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    monkeypatch.setenv("HOOK_TOKEN", "y")
    code, _, err = check(tmp_path, broken, capsys)
    assert code == 2
    assert f"notifier.yaml:{line}: not valid YAML: " in err and hint in err, err


@pytest.mark.parametrize(("broken", "said"), [
    # the settings of a channel written in the column of its name: YAML reads an empty `mail`
    (GOOD.replace("    type: email", "  type: email").replace("    from:", "  from:")
     .replace("    to:", "  to:").replace("    smtp:", "  smtp:"),
     ":2: channels.mail: nothing is written under this key; if the lines after it belong to "
     "it, indent them more than the key"),
    # a section's keys in the column of the section
    (GOOD + "defaults:\ninterval: 5m\n",
     ":15: interval: unknown key; if it belongs under 'defaults:' (empty as written), indent "
     "it more than 'defaults'"),
])
def test_an_empty_key_above_says_to_indent_what_belongs_under_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        broken: str, said: str) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    monkeypatch.setenv("HOOK_TOKEN", "y")
    code, _, err = check(tmp_path, broken, capsys)
    assert code == 2
    assert err.splitlines()[1].endswith(said), err


def test_every_problem_in_one_pass_with_did_you_mean(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_PASSWORD", raising=False)
    monkeypatch.setenv("HOOK_TOKN", "y")  # spelt differently from the file's HOOK_TOKEN
    code, _, err = check(tmp_path, GOOD.replace("[mail, hook]", "[mial, hook]"), capsys)
    assert code == 2
    lines = err.splitlines()[1:]
    assert lines[0].endswith(":6: channels.mail.smtp.password: environment variable "
                             "SMTP_PASSWORD is not set; set it, or write "
                             "${SMTP_PASSWORD:-default} to give a default")
    assert lines[1].endswith(":9: channels.hook.url: environment variable HOOK_TOKEN is not "
                             "set; set it, or write ${HOOK_TOKEN:-default} to give a default; "
                             "did you mean 'HOOK_TOKN'?")
    # Found now, not after the variables are set: the misspelt channel.
    assert lines[2].endswith(":13: subscriptions[0].notify[0]: no channel named 'mial'; "
                             "did you mean 'mail'?")
    # The emptied password does not add "set both username and password".
    assert len(lines) == 3, err


def test_read_only_loading_tolerates_missing_channel_secrets(tmp_path: Path) -> None:
    path = tmp_path / "notifier.yaml"
    path.write_text(GOOD, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(path, {})
    config = load_config(path, {}, require_secrets=False)
    assert config.unresolved == {"mail": ("SMTP_PASSWORD",), "hook": ("HOOK_TOKEN",)}
    # Still described and rendered (by `status`, `preview`), never sent to.
    assert set(config.channels) == {"mail", "hook"}
    # A variable missing outside `channels:` is still an error.
    path.write_text(GOOD.replace("https://blog.example.org/", "${BLOG}"), encoding="utf-8")
    with pytest.raises(ConfigError, match="environment variable BLOG is not set"):
        load_config(path, {}, require_secrets=False)


def test_user_at_localhost_is_an_address(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    monkeypatch.setenv("HOOK_TOKEN", "y")
    mine = GOOD.replace("    notify: [mail, hook]",
                        "    replies_to: [root@localhost, Ann@LocalHost]\n"
                        "    notify: [mail, hook]")
    code, out, err = check(tmp_path, mine, capsys)
    assert code == 0, err
    assert "email to root@localhost via 127.0.0.1:25" in out
    assert "replies to root@localhost, Ann@LocalHost" in out
    # Matched as addresses (by the commenter's Gravatar hash), not as names.
    people = People.of(["root@localhost", "Ann@LocalHost"])
    assert people.names == frozenset()
    assert people.wrote("", author_hash=hashlib.md5(b"ann@localhost").hexdigest())
    code, _, err = check(tmp_path, GOOD.replace("root@localhost", "root@gmailcom"), capsys)
    assert code == 2 and "'root@gmailcom' is not an email address" in err
    code, _, err = check(tmp_path, mine.replace("Ann@LocalHost", "ann@gmailcom"), capsys)
    assert code == 2 and "'ann@gmailcom' is neither a name nor an email address" in err


def test_check_quiet_prints_only_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    monkeypatch.setenv("HOOK_TOKEN", "y")
    assert check(tmp_path, GOOD, capsys, "-q") == (0, "", "")
    code, out, err = check(tmp_path, GOOD.replace("[mail, hook]", "[mail, hoook]"), capsys,
                           "-q")
    assert code == 2 and out == "" and "no channel named 'hoook'" in err
