"""`notifier test-channel NAME`: a sample through the real path, and an honest answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from notifier.cli import main
from tests.support.configs import chat_channel, email_channel
from tests.support.smtp_server import SmtpServer
from tests.support.webhook_receiver import WebhookReceiver


def write_config(tmp_path: Path, smtp: SmtpServer, hook: WebhookReceiver) -> Path:
    (tmp_path / "chat.j2").write_text("[custom] {{ headline }}\n{{ link }}\n", encoding="utf-8")
    path = tmp_path / "notifier.yaml"
    path.write_text(f"""\
state: sqlite:///state.db
channels:
{email_channel("mail", smtp)}{chat_channel("team", hook, "mattermost")}  bot:
    type: telegram
    token: "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
    chat_id: -1001234567890
    api_url: "{hook.origin}"
subscriptions:
  - name: the-thread
    url: https://blog.example.org/
    notify: [mail, team, bot]
    templates: {{webhook/text: chat.j2}}
""", encoding="utf-8")
    return path


def test_test_channel_sends_a_marked_sample(tmp_path: Path, smtp_server: SmtpServer,
                                            webhook_receiver: WebhookReceiver,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, smtp_server, webhook_receiver)
    assert main(["test-channel", "mail", "-c", str(config)]) == 0
    assert main(["test-channel", "team", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "mail: accepted by the server" in out and "team: accepted by the server" in out
    (mail,) = smtp_server.wait_for(1)
    assert "[TEST]" in mail["Subject"] and mail["Subject"].startswith("Reply by notifier")
    text_part = mail.get_body(("plain",))
    assert text_part is not None and "This is a test" in text_part.get_content()
    (request,) = webhook_receiver.wait_for(1)
    assert isinstance(request.json, dict)
    # The subscription's own template is used, as it would be for a real comment.
    # Escaped as Markdown, as any text a chat format sends.
    assert request.json["text"].startswith("\\[custom\\] Reply by notifier \\(test message\\)")
    assert not (tmp_path / "state.db").exists()  # the outbox is bypassed: nothing recorded
    assert "secret-token" not in out


def test_test_channel_reports_the_servers_refusal(tmp_path: Path, smtp_server: SmtpServer,
                                                  webhook_receiver: WebhookReceiver,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, smtp_server, webhook_receiver)
    webhook_receiver.script([(403, {"Content-Type": "application/json"},
                              b'{"ok": false, "error_code": 403, "description": '
                              b'"Forbidden: bot was kicked from the group chat"}')])
    smtp_server.fail_next(550, "Mailbox unavailable", stage="RCPT")
    assert main(["test-channel", "bot", "-c", str(config)]) == 1
    assert main(["test-channel", "mail", "-c", str(config)]) == 1
    out = capsys.readouterr().out
    assert "bot: NOT accepted (refused for good, the daemon would disable the channel): " \
           "telegram bot: HTTP 403: Forbidden: bot was kicked from the group chat" in out
    assert "mail: NOT accepted (refused for good, the daemon would disable the channel): " \
           in out and "550 Mailbox unavailable" in out and "channels.mail.to" in out
    assert "AAHfiqks" not in out
    assert smtp_server.messages == []


def test_test_channel_unknown_name_is_a_usage_error(tmp_path: Path, smtp_server: SmtpServer,
                                                    webhook_receiver: WebhookReceiver,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, smtp_server, webhook_receiver)
    assert main(["test-channel", "teem", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "no channel named 'teem'; did you mean 'team'?" in err
    assert main(["test-channel", "pager", "-c", str(config)]) == 2
    assert "no channel named 'pager'; expected one of: mail, team, bot" \
        in capsys.readouterr().err
    assert webhook_receiver.received == [] and smtp_server.messages == []


def test_test_channel_unreachable_server_is_a_temporary_failure(
        tmp_path: Path, smtp_server: SmtpServer, webhook_receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str]) -> None:
    with SmtpServer() as closed:
        pass  # its port is free again: nothing listens there
    config = write_config(tmp_path, closed, webhook_receiver)
    assert main(["test-channel", "mail", "-c", str(config)]) == 1
    assert "mail: NOT accepted (failed for now, the daemon would retry): " \
           "email mail: cannot connect to 127.0.0.1:" in capsys.readouterr().out
