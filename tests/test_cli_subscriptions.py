"""`notifier add`, `import`, `export` and `preview` on a real local blog, with the file the
operator wrote: their comments and layout stay, and the result passes `check`."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import listparser
import pytest

from notifier.cli import main
from notifier.config import load_config
from tests.support.blog_server import BlogServer
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver

OPML = Path(__file__).parent / "fixtures" / "opml"
POST_PATH = "/2013/10/20/why-defend-stalin/"


def operator_file(tmp_path: Path, blog: BlogServer, smtp_port: int = 2525,
                  hook_url: str = "https://hooks.example.org") -> Path:
    """A file as a person writes it: comments, quoting, odd spacing, sections after."""
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
# Ann's notifier. Secrets come from /etc/notifier/env.
state: sqlite:///state.db    # next to this file

channels:
  mail:                      # to me
    type: email
    from: "Notifier <notifier@localhost>"
    to: [ann@localhost]
    smtp: {{host: 127.0.0.1, port: {smtp_port}, security: none,
           username: ann, password: "${{SMTP_PASSWORD}}"}}
  team:
    type: webhook
    url: "{hook_url}/hooks/${{HOOK_TOKEN}}"
    format: json

subscriptions:
    # the thread I argue in
    -   name: "thread"
        url: '{blog.origin}{POST_PATH}'
        notify: [ mail ]     # only me

# interval for everything
defaults:
  interval: 15m
""", encoding="utf-8")
    return path


def only_added(before: str, after: str) -> list[str]:
    """The lines `after` adds to `before`; fails if any line of `before` changed."""
    added = []
    for line in difflib.ndiff(before.splitlines(), after.splitlines()):
        assert not line.startswith("- "), f"changed: {line}"
        if line.startswith("+ "):
            added.append(line[2:])
    return added


def test_add_discovers_prints_and_appends_keeping_the_file(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = operator_file(tmp_path, blog_server)
    before = path.read_text()
    # No secrets in this shell: add works without them.
    assert main(["add", f"{blog_server.origin}/", "--watch", "posts", "--notify", "mail,team",
                 "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"new posts from {blog_server.origin}/feed/atom/" in out
    assert "notifying mail, team" in out
    added = only_added(before, path.read_text())
    name = added[0].split("name: ")[1]
    assert added == [f"    -   name: {name}", f"        url: {blog_server.origin}/",
                     "        watch: posts", "        notify: [mail, team]"]
    # The new item ends the list, before the comment and section that followed it.
    assert path.read_text().index("notify: [mail, team]") < path.read_text().index(
        "# interval for everything")
    config = load_config(path, {"SMTP_PASSWORD": "x", "HOOK_TOKEN": "y"})
    assert [(s.name, s.watch) for s in config.subscriptions] == [("thread", "comments"),
                                                                 (name, "posts")]


def test_add_refuses_what_it_cannot_follow_and_leaves_the_file(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = operator_file(tmp_path, blog_server)
    before = path.read_text()
    assert main(["add", f"{blog_server.origin}/no-such-page/", "-c", str(path)]) == 1
    assert "nothing was added" in capsys.readouterr().err
    assert main(["add", f"{blog_server.origin}/", "--notify", "mial", "-c", str(path)]) == 2
    assert "no channel named 'mial'; did you mean 'mail'?" in capsys.readouterr().err
    assert main(["add", f"{blog_server.origin}{POST_PATH}", "--name", "thread",
                 "-c", str(path)]) == 2
    assert "already follows the comments" in capsys.readouterr().err
    assert path.read_text() == before


@pytest.mark.parametrize(("fixture", "count"), [
    ("google-reader.opml", 3), ("feedly.opml", 3), ("miniflux.opml", 2), ("rss2email.opml", 2),
])
def test_import_appends_every_feed_once(tmp_path: Path, blog_server: BlogServer,
                                        capsys: pytest.CaptureFixture[str], fixture: str,
                                        count: int) -> None:
    path = operator_file(tmp_path, blog_server)
    before = path.read_text()
    assert main(["import", str(OPML / fixture), "--notify", "team", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"imported {count} subscription" in out and "(posts, notifying team)" in out
    added = only_added(before, path.read_text())
    assert len(added) == 4 * count
    config = load_config(path, {"SMTP_PASSWORD": "x", "HOOK_TOKEN": "y"})
    imported = config.subscriptions[1:]
    assert len(imported) == count
    assert all(s.watch == "posts" and s.notify == ["team"] for s in imported)
    assert "https://blog.example.org/feed/" in {s.url for s in imported}
    # Importing again adds nothing: every feed is followed already.
    assert main(["import", str(OPML / fixture), "-c", str(path)]) == 0
    assert "nothing to import" in capsys.readouterr().out
    assert len(load_config(path, {"SMTP_PASSWORD": "x", "HOOK_TOKEN": "y"})
               .subscriptions) == count + 1


def test_import_of_something_else_is_a_clear_error(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = operator_file(tmp_path, blog_server)
    assert main(["import", str(path), "-c", str(path)]) == 2
    assert "notifier.yaml: no feeds found" in capsys.readouterr().err


def test_export_lists_the_discovered_feeds_and_preview_renders_each_channel(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = operator_file(tmp_path, blog_server, smtp_server.port, webhook_receiver.url)
    # Apprise reaches its services by itself: a preview shows its templates, never sends.
    apprise = (f"  push:\n    type: apprise\n    urls: ['json://"
               f"{webhook_receiver.origin.removeprefix('http://')}/apprise']\n")
    path.write_text(path.read_text().replace("notify: [ mail ]", "notify: [ mail, team, push ]")
                    .replace("\nsubscriptions:", apprise + "\nsubscriptions:"))
    monkeypatch.setenv("SMTP_PASSWORD", "x")
    monkeypatch.setenv("HOOK_TOKEN", "secret-token")
    # Not polled yet (as right after `add`): the feed is read now, and nothing recorded.
    assert main(["preview", "thread", "-c", str(path)]) == 0
    fresh = capsys.readouterr().out
    assert f"newest entry {blog_server.origin}{POST_PATH}#comment-4 by Another Blog" in fresh
    assert "Subject: New comment by Another Blog" in fresh
    assert main(["status", "--json", "-c", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["feeds"] == []
    assert main(["run", "--once", "-c", str(path)]) == 0
    blog_server.scenario = "02-markup-comment"
    capsys.readouterr()

    monkeypatch.delenv("SMTP_PASSWORD")
    monkeypatch.delenv("HOOK_TOKEN")
    assert main(["export", "-c", str(path)]) == 0
    parsed = listparser.parse(capsys.readouterr().out)
    assert [(f.title, f.url) for f in parsed.feeds] == [
        ("thread", f"{blog_server.origin}{POST_PATH}feed/atom/")]

    assert main(["preview", "thread", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert "nothing is sent" in out
    mail = out.split("=== mail ===")[1].split("=== team ===")[0]
    assert "Subject: " in mail and "Why Defend Stalin?" in mail
    assert "From: Notifier <notifier@localhost>" in mail and "To: ann@localhost" in mail
    team, push = out.split("=== team ===")[1].split("=== push ===")
    assert "[title]\nNew comment by " in push and "[text]\n" in push
    assert team.startswith("\nPOST http://127.0.0.1/…  (application/json)")
    payload = json.loads(team.split("(application/json)\n", 1)[1])
    assert payload["subscription"] == "thread"
    assert payload["entry"]["link"].startswith(f"{blog_server.origin}{POST_PATH}#comment-")
    assert "secret-token" not in out and "unset-HOOK_TOKEN" not in out
    assert smtp_server.messages == [] and webhook_receiver.received == []
