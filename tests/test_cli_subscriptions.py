"""`notifier add`, `import`, `export` and `preview` on a real local blog, with the file the
operator wrote: their comments and layout stay, and the result passes `check`."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

import listparser
import pytest

from notifier.cli import main
from notifier.config import load_config
from tests.support.blog_server import WORDPRESS_DIR, BlogServer
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


MAIL = "  mail: {type: email, from: n@localhost, to: [ann@localhost], smtp: {host: 127.0.0.1}}\n"
A_FLOW = "{name: a, url: 'https://a.example.org/', notify: [mail]}"
A_BLOCK = "{d}name: a\n{k}url: https://a.example.org/\n{k}notify: [mail]\n"
BLOCK_ITEM = "{d}name: new\n{k}url: {origin}/\n{k}watch: posts\n{k}notify: [mail]\n"
FLOW_ITEM = "{{name: new, url: '{origin}/', watch: posts, notify: [mail]}}"
# (layout, the file as written, the file after `add`): {new:D:K} is the added item as a
# block with its dash at column D and its keys at column K, {flow} the item in flow style.
LAYOUTS = [
    ("flow-empty",
     "channels:\n" + MAIL + "subscriptions: []    # none yet\ndefaults: {interval: 15m}\n",
     "channels:\n" + MAIL + "subscriptions:    # none yet\n{new:2:4}"
     "defaults: {interval: 15m}\n"),
    ("flow-one-line",
     "channels:\n" + MAIL + f"subscriptions: [{A_FLOW}]  # flow\n",
     "channels:\n" + MAIL + f"subscriptions: [{A_FLOW}, {{flow}}]  # flow\n"),
    ("flow-multi-line-trailing-comma",
     "channels:\n" + MAIL + f"subscriptions: [\n  {A_FLOW},\n  # more to come\n]\n",
     "channels:\n" + MAIL + f"subscriptions: [\n  {A_FLOW}, {{flow}},\n  # more to come\n]\n"),
    ("no-key-no-final-newline",
     "channels:\n" + MAIL + "# the end",
     "channels:\n" + MAIL + "# the end\nsubscriptions:\n{new:2:4}"),
    ("no-key-four-spaces",
     "channels:\n  " + MAIL,
     "channels:\n  " + MAIL + "subscriptions:\n{new:4:6}"),
    ("null-with-comments",
     "subscriptions: ~   # soon\n  # - name: someday\n\nchannels:\n" + MAIL,
     "subscriptions:   # soon\n  # - name: someday\n{new:2:4}\nchannels:\n" + MAIL),
    ("comments-after-the-list",
     "channels:\n" + MAIL + "subscriptions:\n" + A_BLOCK.format(d="  - ", k="    ")
     + "    # watch: posts    (the last item's own, commented out)\n"
       "  # - name: old\n\n# defaults for all\ndefaults:\n  interval: 15m\n",
     "channels:\n" + MAIL + "subscriptions:\n" + A_BLOCK.format(d="  - ", k="    ")
     + "    # watch: posts    (the last item's own, commented out)\n"
       "  # - name: old\n{new:2:4}\n# defaults for all\ndefaults:\n  interval: 15m\n"),
    ("not-indented",
     "channels:\n" + MAIL + "subscriptions:\n" + A_BLOCK.format(d="- ", k="  ")
     + "# end of list\n",
     "channels:\n" + MAIL + "subscriptions:\n" + A_BLOCK.format(d="- ", k="  ")
     + "{new:0:2}# end of list\n"),
    ("four-spaces-dash-alone",
     "channels:\n" + MAIL + "subscriptions:\n    -\n" + A_BLOCK.format(d=" " * 8, k=" " * 8),
     "channels:\n" + MAIL + "subscriptions:\n    -\n" + A_BLOCK.format(d=" " * 8, k=" " * 8)
     + "{new:4:8}"),
    ("flow-document",
     "{channels: {" + MAIL.strip() + "},\n subscriptions: []}\n",
     "{channels: {" + MAIL.strip() + "},\n subscriptions: [{flow}]}\n"),
    ("flow-document-no-key",
     "{channels: {" + MAIL.strip() + "}}\n",
     "{channels: {" + MAIL.strip() + "}, subscriptions: [{flow}]}\n"),
    ("byte-order-mark",
     "\ufeffchannels:\n" + MAIL + "subscriptions:\n" + A_BLOCK.format(d="  - ", k="    "),
     "\ufeffchannels:\n" + MAIL + "subscriptions:\n" + A_BLOCK.format(d="  - ", k="    ")
     + "{new:2:4}"),
    ("last-item-flow-mapping",
     "channels:\n" + MAIL + "subscriptions:\n  - {name: a,\n     url: 'https://a.example.org/', "
                            "notify: [mail]}\nstate: sqlite:///s.db\n",
     "channels:\n" + MAIL + "subscriptions:\n  - {name: a,\n     url: 'https://a.example.org/', "
                            "notify: [mail]}\n{new:2:4}state: sqlite:///s.db\n"),
]


def _expected(template: str, origin: str) -> str:
    def block(match: re.Match[str]) -> str:
        dash, key = int(match.group(1)), int(match.group(2))
        return BLOCK_ITEM.format(d=" " * dash + "-" + " " * (key - dash - 1), k=" " * key,
                                 origin=origin)
    return re.sub(r"\{new:(\d+):(\d+)\}", block, template).replace(
        "{flow}", FLOW_ITEM.format(origin=origin))


@pytest.mark.parametrize(("layout", "written", "expected"), LAYOUTS,
                         ids=[layout[0] for layout in LAYOUTS])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_add_keeps_every_layout_byte_for_byte(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str],
        layout: str, written: str, expected: str, newline: str) -> None:
    path = tmp_path / "notifier.yaml"
    path.write_bytes(written.replace("\n", newline).encode())
    assert main(["add", f"{blog_server.origin}/", "--name", "new", "--watch", "posts",
                 "--notify", "mail", "-c", str(path)]) == 0, capsys.readouterr().err
    want = _expected(expected, blog_server.origin).replace("\n", newline)
    assert path.read_bytes().decode() == want
    names = [s.name for s in load_config(path, {}).subscriptions]
    assert names[-1] == "new" and len(names) == len(set(names))


def test_the_first_subscription_is_added_to_a_file_check_refuses_for_having_none(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notifier.yaml"
    path.write_text("channels:\n" + MAIL)
    assert main(["check", "-c", str(path)]) == 2
    assert ("notifier.yaml: subscriptions: none yet: add one with `notifier add URL -c "
            "notifier.yaml` or `notifier import FILE.opml -c notifier.yaml`"
            in capsys.readouterr().err)
    assert main(["import", str(OPML / "miniflux.opml"), "-c", str(path)]) == 0
    assert main(["check", "-c", str(path)]) == 0
    assert len(load_config(path, {}).subscriptions) == 2


def test_add_with_included_files_writes_the_main_file_only(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    included = tmp_path / "subscriptions.d" / "team.yaml"
    included.parent.mkdir()
    included.write_text(f"subscriptions:\n  - {A_FLOW.replace('name: a', 'name: new')}\n")
    path = tmp_path / "notifier.yaml"
    path.write_text("channels:\n" + MAIL + "include: subscriptions.d/\n")
    team = included.read_bytes()
    # Names are unique across the files: "new" is taken by the included file.
    assert main(["add", f"{blog_server.origin}/", "--name", "new", "-c", str(path)]) == 2
    assert "a subscription named 'new' exists already" in capsys.readouterr().err
    assert main(["add", f"{blog_server.origin}/", "--watch", "posts", "--notify", "mail",
                 "-c", str(path)]) == 0
    assert included.read_bytes() == team
    config = load_config(path, {})
    assert config.subscriptions[0].name != "new"
    assert [s.url for s in config.subscriptions] == [f"{blog_server.origin}/",
                                                     "https://a.example.org/"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_add_into_a_folder_it_cannot_write_says_so_and_changes_nothing(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    path = folder / "notifier.yaml"
    path.write_text("channels:\n" + MAIL + "subscriptions: []\n")
    folder.chmod(0o555)
    try:
        assert main(["add", f"{blog_server.origin}/", "-c", str(path)]) == 1
        err = capsys.readouterr().err
        assert f"cannot write beside it in {folder}" in err and "nothing was added" in err
        assert "Traceback" not in err
        assert path.read_text().endswith("subscriptions: []\n")
    finally:
        folder.chmod(0o755)


def test_add_through_a_symlink_keeps_the_link(
        tmp_path: Path, blog_server: BlogServer) -> None:
    real = tmp_path / "repo" / "notifier.yaml"
    real.parent.mkdir()
    # `include:` is relative to the path the daemon is given (the link's folder): checked so.
    (tmp_path / "subscriptions.d").mkdir()
    (tmp_path / "subscriptions.d" / "team.yaml").write_text(f"subscriptions:\n  - {A_FLOW}\n")
    real.write_text("channels:\n" + MAIL + "include: subscriptions.d/\nsubscriptions: []\n")
    real.chmod(0o640)
    link = tmp_path / "notifier.yaml"
    link.symlink_to(real)
    assert main(["add", f"{blog_server.origin}/", "--notify", "mail", "-c", str(link)]) == 0
    assert link.is_symlink() and "- name: " in real.read_text()
    assert real.stat().st_mode & 0o777 == 0o640
    assert len(load_config(link, {}).subscriptions) == 2


def _followers_file(tmp_path: Path, blog: BlogServer) -> Path:
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///state.db
channels:
  terminal: {{type: console}}
subscriptions:
  - name: site
    url: {blog.origin}/
    watch: threads
    threads_max_age: 20000d
    notify: [terminal]
  - name: mine
    url: {blog.origin}/
    replies_to: [" SouthernFriedBolshevik "]
    notify: [terminal]
  - name: nobodys
    url: {blog.origin}/
    replies_to: [Nobody Atall]
    notify: [terminal]
""", encoding="utf-8")
    return path


def test_preview_of_threads_shows_the_newest_comment_of_a_followed_thread(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    # The posts feed with its one commented post only: its comments are newer than it.
    posts = (WORDPRESS_DIR / "01-seed-thread" / "posts.atom.xml").read_text()
    first = posts.index("\t<entry>")
    second = posts.index("\t<entry>", first + 1)
    blog_server.add_file("/feed/atom/", (posts[:first] + posts[second:]).encode(),
                         "application/atom+xml; charset=UTF-8")
    path = _followers_file(tmp_path, blog_server)
    # Not polled yet: the thread is found and read now, as the daemon would.
    assert main(["preview", "site", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"newest entry {blog_server.origin}{POST_PATH}#comment-4 by Another Blog" in out
    assert 'New comment by Another Blog on "Why Defend Stalin?"' in out
    assert not (tmp_path / "state.db").exists()  # nothing recorded
    assert main(["run", "--once", "-c", str(path)]) == 0
    assert main(["run", "--once", "-c", str(path)]) == 0
    blog_server.scenario = "02-markup-comment"
    assert main(["run", "--once", "-c", str(path)]) == 0
    capsys.readouterr()
    # From the state now: the comment the last run found, in the thread's feed.
    blog_server.clear_log()
    assert main(["preview", "site", "-c", str(path)]) == 0
    assert f"newest entry {blog_server.origin}{POST_PATH}#comment-5 by " \
        in capsys.readouterr().out
    assert blog_server.requests == []


def test_preview_of_replies_to_shows_the_newest_reply_quoting_its_parent(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    blog_server.scenario = "03-burst-of-24"
    path = _followers_file(tmp_path, blog_server)
    for polled in (False, True):
        # Comment 29 is the newest, but only 20 and 25 answer SouthernFriedBolshevik, whose
        # comment 3 is no longer in the feed: it is read from the REST API, as in a poll.
        blog_server.clear_log()
        assert main(["preview", "mine", "-c", str(path)]) == 0
        assert (blog_server.requests == []) == polled  # from the state once polled
        out = capsys.readouterr().out
        assert f"newest entry {blog_server.origin}{POST_PATH}#comment-25 by Reader 20" in out
        assert 'Reply by Reader 20 to southernfriedbolshevik on "Why Defend Stalin?"' in out
        assert "southernfriedbolshevik wrote:\n> Thank you very much" in out
        assert "would be reported" not in out
        if not polled:
            assert main(["run", "--once", "-c", str(path)]) == 0
            capsys.readouterr()
    # Nothing answers Nobody Atall: the newest comment is shown, saying so.
    assert main(["preview", "nobodys", "-c", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"newest entry {blog_server.origin}{POST_PATH}#comment-29 by Reader 24" in out
    assert "(none of its recent entries would be reported: comments only; replies to " \
           "Nobody Atall; the newest is shown as it would read)" in out


def test_preview_of_a_feed_that_cannot_be_read_says_why(
        tmp_path: Path, blog_server: BlogServer, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "notifier.yaml"
    path.write_text("channels:\n" + MAIL + f"subscriptions:\n  - name: gone\n    url: "
                    f"{blog_server.origin}/no-such-blog/\n    notify: [mail]\n")
    assert main(["preview", "gone", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "nothing recorded for gone yet, and reading its feed failed: " in err
    assert "404" in err and "Traceback" not in err
    assert not (tmp_path / "notifier.db").exists()
