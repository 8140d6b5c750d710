"""Configuration errors a user will make, each answered with file, line, key and a fix."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from notifier.channels.email import EmailConfig
from notifier.channels.webhook import WebhookConfig
from notifier.cli import main
from notifier.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
state: sqlite:///state.db
defaults:
  interval: 10m
channels:
  me:
    type: email
    from: "Thread notifier <notifier@example.org>"
    to: [reader@example.org]
    smtp: {host: smtp.example.org, port: 587, security: starttls,
           username: notifier, password: "${SMTP_PASSWORD}"}
  team:
    type: webhook
    url: "${TEAM_WEBHOOK_URL}"
    format: slack
subscriptions:
  - name: new-posts
    url: https://blog.example.org/
    watch: posts
    notify: [me]
  - name: the-thread
    url: https://blog.example.org/2013/10/20/why-defend-stalin/
    watch: comments
    notify: [me, team]
  - name: replies-to-me
    url: https://blog.example.org/
    watch: comments
    replies_to: ["East Side Boy"]
    notify: [me]
"""

ENV = {"SMTP_PASSWORD": "s3cret", "TEAM_WEBHOOK_URL": "https://hooks.example.org/T0/B0/xyz"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notifier.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV if env is None else env)
    return str(caught.value)


def test_the_issue_example_is_valid_and_typed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), ENV)
    assert [s.name for s in config.subscriptions] == ["new-posts", "the-thread", "replies-to-me"]
    assert config.interval(config.subscriptions[0]) == 600
    assert config.subscriptions[2].replies_to == ["East Side Boy"]
    team = config.channels["team"]
    assert isinstance(team, WebhookConfig) and team.url == ENV["TEAM_WEBHOOK_URL"]
    assert config.state_url() == f"sqlite:///{(tmp_path / 'state.db').resolve()}"


def test_the_shipped_example_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(ROOT / "config.example.yaml")]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "wordpress-news" in out


def test_env_default_and_dollar_escape(tmp_path: Path) -> None:
    text = GOOD.replace('"${TEAM_WEBHOOK_URL}"', '"${HOOK:-https://hooks.example.org/}$$x"')
    config = load_config(write(tmp_path, text), {"SMTP_PASSWORD": "p"})
    team = config.channels["team"]
    assert isinstance(team, WebhookConfig) and team.url == "https://hooks.example.org/$x"


def test_env_value_cannot_change_structure(tmp_path: Path) -> None:
    env = dict(ENV, SMTP_PASSWORD="x}\n  evil: [1]")
    config = load_config(write(tmp_path, GOOD), env)
    mail = config.channels["me"]
    assert isinstance(mail, EmailConfig) and mail.smtp.password == "x}\n  evil: [1]"


@pytest.mark.parametrize(("name", "edit", "expected"), [
    ("yaml syntax", lambda t: t.replace("    watch: posts\n", "    watch: [posts\n"),
     ":18: not valid YAML: the [ list ] that starts on this line is not closed with ]"),
    ("unknown top-level key", lambda t: t.replace("subscriptions:", "subscription:"),
     ":15: subscription: unknown key; did you mean 'subscriptions'?"),
    ("unknown key in a subscription", lambda t: t.replace("    watch: posts",
                                                          "    wacth: posts"),
     ":18: subscriptions[0].wacth: unknown key; did you mean 'watch'?"),
    ("unknown channel in notify", lambda t: t.replace("notify: [me, team]",
                                                      "notify: [me, teem]"),
     ":23: subscriptions[1].notify[1]: no channel named 'teem'; did you mean 'team'?"),
    ("bad url", lambda t: t.replace("url: https://blog.example.org/\n    watch: posts",
                                    "url: ftp://blog.example.org/\n    watch: posts"),
     ":17: subscriptions[0].url: 'ftp://blog.example.org/…' is not an http:// or https:// URL"),
    ("bad interval", lambda t: t.replace("interval: 10m", "interval: 10 minutes"),
     ":3: defaults.interval: '10 minutes' is not a duration"),
    ("missing environment variable", lambda t: t,
     ":10: channels.me.smtp.password: environment variable SMTP_PASSWORD is not set"),
    ("unknown channel type", lambda t: t.replace("type: webhook", "type: pager"),
     ":12: channels.team.type: unknown channel type 'pager'; known types: console"),
    ("bad watch value", lambda t: t.replace("watch: posts", "watch: post"),
     ":18: subscriptions[0].watch: Input should be 'posts', 'comments' or 'threads' (got 'post')"),
    ("duplicate subscription name", lambda t: t.replace("name: the-thread", "name: new-posts"),
     ":20: subscriptions[1].name: subscription name 'new-posts' is already used by "
     "subscriptions[0]"),
    ("missing url", lambda t: t.replace("    url: https://blog.example.org/\n    watch: posts\n",
                                        "    watch: posts\n"),
     ":16: subscriptions[0].url: this required key is missing"),
    ("bad smtp security", lambda t: t.replace("security: starttls", "security: ssl"),
     ":9: channels.me.smtp.security: Input should be"),
    ("bad webhook format", lambda t: t.replace("format: slack", "format: irc"),
     ":14: channels.team.format: Input should be"),
    ("duplicate key", lambda t: t.replace("    watch: posts\n",
                                          "    watch: posts\n    watch: comments\n"),
     ":19: subscriptions[0].watch: this key appears twice"),
    ("empty notify", lambda t: t.replace("notify: [me, team]", "notify: []"),
     ":23: subscriptions[1].notify: List should have at least 1 item"),
    ("missing template file",
     lambda t: t.replace("    watch: posts\n",
                         "    watch: posts\n    templates: {subject: no.j2}\n"),
     ":19: subscriptions[0].templates.subject: template file 'no.j2' does not exist"),
    ("negative backfill", lambda t: t.replace("interval: 10m", "interval: 10m\n  backfill: -1"),
     ":4: defaults.backfill: Input should be greater than or equal to 0"),
    ("bad rescan", lambda t: t.replace("interval: 10m", "interval: 10m\n  rescan: often"),
     ":4: defaults.rescan: 'often' is not a duration"),
    ("include_subthread without replies_to",
     lambda t: t.replace("    watch: comments\n    notify: [me, team]",
                         "    watch: comments\n    include_subthread: true\n"
                         "    notify: [me, team]"),
     ":23: subscriptions[1].include_subthread: include_subthread needs replies_to"),
    ("threads_max_age without watch threads",
     lambda t: t.replace("    watch: posts\n", "    watch: posts\n    threads_max_age: 7d\n"),
     ":19: subscriptions[0].threads_max_age: threads_max_age needs watch: threads"),
    ("notify_edits on posts",
     lambda t: t.replace("    watch: posts\n", "    watch: posts\n    notify_edits: true\n"),
     ":19: subscriptions[0].notify_edits: notify_edits is for comments"),
    ("replies_to neither name nor email",
     lambda t: t.replace('replies_to: ["East Side Boy"]',
                         'replies_to: ["East Side Boy", "me@home"]'),
     ":27: subscriptions[2].replies_to[1]: 'me@home' is neither a name nor an email address"),
    ("exclude_self not a boolean",
     lambda t: t.replace('replies_to: ["East Side Boy"]',
                         'replies_to: ["East Side Boy"]\n    exclude_self: sometimes'),
     ":28: subscriptions[2].exclude_self: Input should be a valid boolean"),
])
def test_broken_config_is_reported_precisely(tmp_path: Path, name: str, edit: object,
                                             expected: str) -> None:
    assert callable(edit)
    env = {"TEAM_WEBHOOK_URL": ENV["TEAM_WEBHOOK_URL"]} if "environment" in name else ENV
    message = problems(tmp_path, edit(GOOD), env)
    assert expected in message, message
    assert message.startswith(str(tmp_path / "notifier.yaml") + ":")


def test_thread_keys_are_typed_with_defaults(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.replace("interval: 10m", "interval: 10m\n  rescan: 2h\n  threads_max_age: 14d")
    text += """\
  - name: whole-site
    url: https://blog.example.org/
    watch: threads
    threads_max_age: 3d
    rescan: 30m
    replies_to: [me@example.org, "https://me.example.org/"]
    include_subthread: true
    exclude_self: false
    notify_edits: true
    notify: [me]
"""
    config = load_config(write(tmp_path, text), ENV)
    site = config.subscription("whole-site")
    thread = config.subscription("the-thread")
    assert site is not None and thread is not None
    assert (config.rescan(site), config.threads_max_age(site)) == (1800.0, 3 * 86400.0)
    assert (config.rescan(thread), config.threads_max_age(thread)) == (7200.0, 14 * 86400.0)
    assert site.include_subthread and site.notify_edits and not site.exclude_self
    assert thread.exclude_self and not thread.notify_edits and not thread.include_subthread
    # `check` shows what they mean.
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "-c", str(tmp_path / "notifier.yaml")]) == 0
    (line,) = [li for li in capsys.readouterr().out.splitlines() if "whole-site:" in li]
    for shown in ("threads of https://blog.example.org/", "replies (and their subthreads) to "
                  "me@example.org, https://me.example.org/", "their own comments too",
                  "posts of the last 3d", "edits too", "rescan every 30m"):
        assert shown in line, line


def test_all_problems_are_listed_together(tmp_path: Path) -> None:
    text = GOOD.replace("watch: posts", "watch: post").replace("format: slack", "format: irc")
    message = problems(tmp_path, text)
    assert "subscriptions[0].watch" in message and "channels.team.format" in message


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    assert "the file must be a mapping" in problems(tmp_path, "")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml", {})


def test_check_command_exits_2_without_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("notify: [me, team]", "notify: [me, teem]"))
    result = subprocess.run([sys.executable, "-m", "notifier", "check", "-c", str(path)],
                            capture_output=True, text=True, env={**ENV, "PATH": ""},
                            timeout=60, check=False)
    assert result.returncode == 2
    assert "no channel named 'teem'" in result.stderr
    assert "Traceback" not in result.stderr
    assert ENV["SMTP_PASSWORD"] not in result.stderr + result.stdout


def test_check_summary_hides_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    assert main(["check", "-c", str(write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert "3 subscriptions" in out or "subscriptions (3)" in out
    assert "replies to East Side Boy" in out
    assert "s3cret" not in out and "xyz" not in out


def test_a_token_pasted_with_a_space_or_line_break_is_named(tmp_path: Path) -> None:
    """Matrix's and ntfy's tokens travel in a header: one rule (schema.Token) for both."""
    found = problems(tmp_path, GOOD.replace("channels:\n", """channels:
  room:
    type: matrix
    homeserver: https://matrix.example.org
    room: "!abc:example.org"
    access_token: "syt_abc def"
  phone:
    type: ntfy
    url: https://ntfy.sh/replies
    token: "tk_abc\\ndef"
""", 1))
    said = "a token cannot contain spaces or line breaks; copy it again"
    assert f"notifier.yaml:9: channels.room.access_token: {said}" in found, found
    assert f"notifier.yaml:13: channels.phone.token: {said}" in found, found
    assert "syt_abc" not in found and "tk_abc" not in found


def test_the_subscriptions_digest_nodes_compare_follows_meaning_not_spelling(
        tmp_path: Path) -> None:
    """Nodes sharing a database compare this digest: the same subscriptions written in
    another order of keys, style or folder layout agree; a changed interval, a changed
    default or one more subscription does not."""
    def digest(text: str) -> str:
        path = tmp_path / "notifier.yaml"
        path.write_text(text, encoding="utf-8")
        return load_config(path).subscriptions_hash()

    plain = digest(
        "channels: {me: {type: console}}\n"
        "subscriptions:\n"
        "  - {name: a, url: 'https://blog.example.org/', notify: [me]}\n"
        "  - {name: b, url: 'https://other.example.org/feed/', notify: [me], interval: 1h}\n")
    respelled = digest(
        "# the same, written otherwise\n"
        "channels:\n"
        "  me:\n"
        "    type: console\n"
        "subscriptions:\n"
        "  - name: a\n"
        "    notify: [me]\n"
        "    url: https://blog.example.org/\n"
        "  - url: \"https://other.example.org/feed/\"\n"
        "    interval: 60m\n"
        "    name: b\n"
        "    notify:\n"
        "      - me\n")
    other_interval = digest(
        "channels: {me: {type: console}}\n"
        "subscriptions:\n"
        "  - {name: a, url: 'https://blog.example.org/', notify: [me]}\n"
        "  - {name: b, url: 'https://other.example.org/feed/', notify: [me], interval: 2h}\n")
    other_default = digest(
        "channels: {me: {type: console}}\n"
        "defaults: {interval: 5m}\n"
        "subscriptions:\n"
        "  - {name: a, url: 'https://blog.example.org/', notify: [me]}\n"
        "  - {name: b, url: 'https://other.example.org/feed/', notify: [me], interval: 1h}\n")
    assert plain == respelled
    assert len({plain, other_interval, other_default}) == 3
