"""Living with the daemon from a shell: status (also as JSON, also without the channels'
secrets), retry --now, run --once's exit status, and a refused SMTP login that stops the
channel until the operator fixes it. Real blog, SMTP server and webhook receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest

from notifier.cli import main
from tests.support.blog_server import BlogServer
from tests.support.daemon import cli_env
from tests.support.smtp_server import SmtpServer, make_certificate
from tests.support.webhook_receiver import WebhookReceiver

POST_PATH = "/2013/10/20/why-defend-stalin/"


def write_config(tmp_path: Path, blog: BlogServer, smtp: SmtpServer,
                 hook: WebhookReceiver, extra_subscriptions: str = "") -> Path:
    path = tmp_path / "notifier.yaml"
    path.write_text(textwrap.dedent(f"""\
        state: sqlite:///state.db
        channels:
          mail:
            type: email
            from: notifier@localhost
            to: [reader@localhost]
            smtp: {{host: 127.0.0.1, port: {smtp.port}, security: none,
                   username: notifier, password: "${{SMTP_PASSWORD}}"}}
          hook:
            type: webhook
            url: "{hook.url}/hooks/${{HOOK_TOKEN}}"
            format: json
        subscriptions:
          - name: thread
            url: {blog.origin}{POST_PATH}
            notify: [mail, hook]
        """) + extra_subscriptions, encoding="utf-8")
    return path


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret!")
    monkeypatch.setenv("HOOK_TOKEN", "tok-123")
    return monkeypatch


def status_json(config: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(["status", "--json", "-c", str(config)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, dict)
    return data


def channel(data: dict[str, object], name: str) -> dict[str, object]:
    channels = data["channels"]
    assert isinstance(channels, list)
    found: dict[str, object] = next(c for c in channels if c["name"] == name)
    return found


def test_first_run_says_a_baseline_was_recorded(
        tmp_path: Path, blog_server: BlogServer, secrets: pytest.MonkeyPatch,
        webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    with SmtpServer(users={"notifier": "s3cret!"}) as smtp:
        config = write_config(tmp_path, blog_server, smtp, webhook_receiver)
        assert main(["run", "--once", "-c", str(config)]) == 0
        first = capsys.readouterr().out
        # The captured post has three comments; none is reported, and the reader is told why.
        assert "baseline: 3 entries recorded on 1 feed (thread); new ones will be reported" \
            in first
        assert main(["run", "--once", "-c", str(config)]) == 0
        assert "baseline" not in capsys.readouterr().out
        assert smtp.messages == [] and webhook_receiver.received == []


def test_refused_login_disables_the_channel_until_fixed_and_retry_now_sends(
        tmp_path: Path, blog_server: BlogServer, secrets: pytest.MonkeyPatch,
        webhook_receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    with SmtpServer(users={"notifier": "s3cret!"}) as smtp:
        config = write_config(tmp_path, blog_server, smtp, webhook_receiver)
        assert main(["run", "--once", "-c", str(config)]) == 0
        blog_server.scenario = "02-markup-comment"
        secrets.setenv("SMTP_PASSWORD", "wrong")
        assert main(["run", "--once", "-c", str(config)]) == 1
        err = capsys.readouterr().err
        assert "login refused (535" in err and "channels.mail.smtp.username and password" in err
        assert "channel mail is disabled" in err and "wrong" not in err
        assert len(webhook_receiver.wait_for(1)) == 1  # the other channel is not held back

        # A shell without the service's environment can still look and act.
        secrets.delenv("SMTP_PASSWORD")
        secrets.delenv("HOOK_TOKEN")
        data = status_json(config, capsys)
        mail = channel(data, "mail")
        assert mail["dead"] == 1 and "login refused (535" in str(mail["disabled"])
        assert channel(data, "hook")["sent"] == 1
        assert main(["status", "-c", str(config)]) == 0
        table = capsys.readouterr().out
        assert "DISABLED: email mail:" in table
        assert "until `notifier retry --now --channel mail`" in table
        assert "settings need HOOK_TOKEN" in table

        # Still failing on the next pass: cron sees exit status 1, no new attempt is made.
        secrets.setenv("SMTP_PASSWORD", "wrong")
        secrets.setenv("HOOK_TOKEN", "tok-123")
        assert main(["run", "--once", "-c", str(config)]) == 1
        capsys.readouterr()

        secrets.delenv("SMTP_PASSWORD")
        assert main(["retry", "--now", "--channel", "mail", "-c", str(config)]) == 0
        out = capsys.readouterr().out
        assert "queued 1 dead-lettered notification again for mail" in out
        assert "re-enabled mail" in out

        secrets.setenv("SMTP_PASSWORD", "s3cret!")
        assert main(["run", "--once", "-c", str(config)]) == 0
        (message,) = smtp.wait_for(1)
        assert "Markup Tester" in message["Subject"]
        assert main(["run", "--once", "-c", str(config)]) == 0
        assert len(smtp.messages) == 1 and len(webhook_receiver.received) == 1


def test_failing_notifications_keep_exit_status_1_until_retry_now_sends_them(
        tmp_path: Path, blog_server: BlogServer, secrets: pytest.MonkeyPatch,
        smtp_server: SmtpServer, webhook_receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver)
    config.write_text(config.read_text().replace("[mail, hook]", "[hook]"))
    assert main(["run", "--once", "-c", str(config)]) == 0
    blog_server.scenario = "02-markup-comment"
    webhook_receiver.script([(503, {}, b"down")])
    assert main(["run", "--once", "-c", str(config)]) == 1
    capsys.readouterr()

    # Not due again for a while: this pass tries nothing, and still says it is not well.
    before = datetime.now(UTC)
    assert main(["run", "--once", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "1 notification to hook still failing; next attempt 20" in err
    assert "`notifier retry --now --channel hook` sends them" in err
    assert len(webhook_receiver.received) == 1

    data = status_json(config, capsys)
    hook = channel(data, "hook")
    assert hook["failing"] == 1 and hook["last_error"] == "webhook hook: HTTP 503"
    retry_at = datetime.fromisoformat(str(hook["next_retry"]))
    assert retry_at > before  # an absolute time, not "retry 1 in 5 s"
    assert main(["status", "-c", str(config)]) == 0
    table = capsys.readouterr().out
    assert "1 failing; next attempt " + retry_at.strftime("%Y-%m-%d %H:%M:%S UTC") in table
    assert "retry 1 in" not in table

    assert main(["retry", "--now", "-c", str(config)]) == 0
    assert "1 failing notification due now" in capsys.readouterr().out
    assert main(["run", "--once", "-c", str(config)]) == 0
    assert len(webhook_receiver.received) == 2
    ids = {r.headers["webhook-id"] for r in webhook_receiver.received}
    assert len(ids) == 1  # the same notification, sent again


def test_status_json_lists_failing_feeds_and_discoveries_with_reasons(
        tmp_path: Path, blog_server: BlogServer, secrets: pytest.MonkeyPatch,
        smtp_server: SmtpServer, webhook_receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str]) -> None:
    extra = (f"  - name: gone\n    url: {blog_server.origin}/no-such-blog/\n"
             "    notify: [hook]\n")
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver, extra)
    assert main(["run", "--once", "-c", str(config)]) == 1
    capsys.readouterr()
    blog_server.override(f"{POST_PATH}feed/atom/", status=500, body=b"oops")
    assert main(["run", "--once", "-c", str(config)]) == 1
    capsys.readouterr()
    data = status_json(config, capsys)
    discoveries = data["discovery_failing"]
    assert isinstance(discoveries, list)
    (lost,) = discoveries
    assert lost["subscription"] == "gone" and "404" in lost["error"]
    feeds = data["feeds"]
    assert isinstance(feeds, list)
    (feed,) = [f for f in feeds if f["url"].endswith(POST_PATH + "feed/atom/")]
    assert feed["state"] == "failing" and "500" in feed["last_error"]
    assert feed["subscriptions"] == ["thread"]
    assert datetime.fromisoformat(feed["next_poll"]) > datetime.fromisoformat(
        feed["last_polled"])


def test_demo_shows_a_notification_without_internet() -> None:
    """The README's no-internet demo: a bundled blog on loopback, the real pipeline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    env["HTTPS_PROXY"] = env["HTTP_PROXY"] = "http://127.0.0.1:9"  # no way out, if it tried
    result = subprocess.run([sys.executable, "-m", "notifier", "demo"], capture_output=True,
                            text=True, timeout=120, check=False, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "baseline: 3 entries recorded on 1 feed (demo-thread); new ones will be reported" \
        in out
    assert "New comment by Markup Tester on \"Why Defend Stalin?\"" in out
    assert "> the people make the heroes" in out and "alert(1)" not in out
    assert out.index("baseline") < out.index("Markup Tester")
    assert result.stderr == ""


@pytest.mark.parametrize(("server_tls", "security", "ca_file", "said"), [
    ("none", "tls", False, "); if this port does not speak TLS from the first byte, use "
                           "security: starttls (port 587), or security: none for a relay on "
                           "this machine"),
    ("none", "starttls", False, "server does not offer STARTTLS; refusing to send in clear "
                                "text: use security: tls if this port speaks TLS from the "
                                "first byte (465), or security: none for a relay on this "
                                "machine"),
    ("implicit", "tls", False, "set channels.mail.smtp.ca_file to that CA's certificate "
                               "(PEM)"),
    ("starttls", "starttls", False, "set channels.mail.smtp.ca_file to that CA's "
                                    "certificate (PEM)"),
    ("starttls", "starttls", True, None),
], ids=["tls-to-plain", "starttls-not-offered", "tls-private-ca", "starttls-private-ca",
        "ca-file-set"])
def test_tls_mistakes_say_which_option_fixes_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], server_tls: Literal[
            "none", "starttls", "implicit"], security: str, ca_file: bool,
        said: str | None) -> None:
    certificate = make_certificate(tmp_path) if server_tls != "none" else None
    if server_tls != "none" and certificate is None:
        pytest.skip("openssl is needed to make a test certificate")
    path = tmp_path / "notifier.yaml"
    ca = f", ca_file: {certificate[0].name}" if ca_file and certificate else ""
    with SmtpServer(tls=server_tls, certificate=certificate) as server:
        path.write_text(textwrap.dedent(f"""\
            channels:
              mail:
                type: email
                from: notifier@localhost
                to: [reader@localhost]
                smtp: {{host: 127.0.0.1, port: {server.port}, security: {security},
                       timeout: 5s{ca}}}
            subscriptions:
              - {{name: blog, url: "https://blog.example.org/", notify: [mail]}}
            """), encoding="utf-8")
        code = main(["test-channel", "mail", "-c", str(path)])
        out = capsys.readouterr().out
        if said is None:
            assert code == 0, out
            assert len(server.wait_for(1)) == 1
        else:
            assert code == 1
            assert said in out, out
            assert server.messages == []


def test_a_running_daemon_sends_at_once_after_retry_now(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver, secrets: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver)
    text = config.read_text().replace("[mail, hook]", "[hook]").replace(
        "    format: json\n", "    format: json\n    retry: {first: 1h}\n")
    config.write_text(text)
    assert main(["run", "--once", "-c", str(config)]) == 0
    blog_server.scenario = "02-markup-comment"
    webhook_receiver.script([(503, {}, b"down")])
    assert main(["run", "--once", "-c", str(config)]) == 1  # refused; next try in an hour
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    daemon = subprocess.Popen([sys.executable, "-m", "notifier", "run", "-c", str(config)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)
    log: list[str] = []
    try:
        assert daemon.stderr is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(" running: " in line for line in log):
            log.append(daemon.stderr.readline())
        assert any(" running: " in line for line in log), log
        capsys.readouterr()
        assert len(webhook_receiver.received) == 1  # the daemon waits for the retry time
        assert main(["retry", "--now", "-c", str(config)]) == 0
        assert "1 failing notification due now" in capsys.readouterr().out
        second = webhook_receiver.wait_for(2, timeout=20)
        assert second[0].headers["webhook-id"] == second[1].headers["webhook-id"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, "".join(log) + err
    data = status_json(config, capsys)
    assert channel(data, "hook")["sent"] == 1 and channel(data, "hook")["failing"] == 0


def test_every_recipient_refused_disables_the_channel_naming_the_setting(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer,
        webhook_receiver: WebhookReceiver, secrets: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, blog_server, smtp_server, webhook_receiver)
    config.write_text(config.read_text().replace("username: notifier, password: "
                                                 "\"${SMTP_PASSWORD}\"", "timeout: 5s"))
    assert main(["run", "--once", "-c", str(config)]) == 0
    blog_server.scenario = "02-markup-comment"
    smtp_server.fail_next(550, "5.1.1 No such user here", stage="RCPT")
    assert main(["run", "--once", "-c", str(config)]) == 1
    err = capsys.readouterr().err
    assert "every recipient was refused: reader@localhost (550 5.1.1 No such user here); " \
           "fix the addresses in channels.mail.to" in err
    mail = channel(status_json(config, capsys), "mail")
    assert mail["dead"] == 1 and "channels.mail.to" in str(mail["disabled"])
    assert smtp_server.messages == []


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`notifier status --json | head -1`: once the reader has gone, the command stops
    quietly (exit 1), without a BrokenPipeError traceback on the terminal."""
    config = tmp_path / "notifier.yaml"
    config.write_text("state: sqlite:///state.db\nchannels: {me: {type: console}}\n"
                      "subscriptions:\n  - {name: a, url: 'https://blog.example.org/', "
                      "notify: [me]}\n", encoding="utf-8")
    process = subprocess.Popen([sys.executable, "-m", "notifier", "status", "--json", "-c",
                                str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=cli_env())
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader is gone before anything was written
    try:
        errors = process.stderr.read().decode()
        assert process.wait(timeout=60) == 1
    finally:
        process.kill()
        process.stderr.close()
    assert errors == ""
