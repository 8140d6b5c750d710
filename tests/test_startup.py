"""What a start costs: `notifier run --once` from cron over feeds that have not changed
imports what polling needs and nothing more (no templates, no other command), and
`notifier --help` answers without loading the configuration's validation or the store.
Each process is a fresh one, as cron starts it; real blog and SMTP server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.blog_server import BlogServer
from tests.support.daemon import cli_env
from tests.support.smtp_server import SmtpServer

POST_PATH = "/2013/10/20/why-defend-stalin/"

# `python -c PROBE ARGS...`: the `notifier` command with ARGS, then the modules it loaded.
PROBE = textwrap.dedent("""\
    import json, sys
    from notifier.__main__ import main
    try:
        code = main()
    except SystemExit as stop:
        code = stop.code
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
    """)


def notifier(*args: str, cwd: Path) -> tuple[int, set[str], str]:
    """Exit status, loaded modules and output of `notifier ARGS` in a new process."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True,
                          text=True, env=cli_env(), cwd=cwd, timeout=120, check=False)
    *output, last = done.stdout.splitlines() or [""]
    try:
        probe = json.loads(last)
    except json.JSONDecodeError:
        raise AssertionError(f"notifier {' '.join(args)} failed:\n{done.stderr}") from None
    return probe["code"], set(probe["modules"]), "\n".join(output)


def write_config(tmp_path: Path, blog: BlogServer, smtp: SmtpServer) -> Path:
    path = tmp_path / "notifier.yaml"
    path.write_text(textwrap.dedent(f"""\
        state: sqlite:///state.db
        channels:
          mail:
            type: email
            from: notifier@localhost
            to: [reader@localhost]
            smtp: {{host: 127.0.0.1, port: {smtp.port}, security: none}}
        subscriptions:
          - name: thread
            url: {blog.origin}{POST_PATH}
            notify: [mail]
        """), encoding="utf-8")
    return path


NOT_FOR_POLLING = {"jinja2", "notifier.jinjaenv", "notifier.commands.preview",
                   "notifier.commands.demo", "notifier.commands.status",
                   "notifier.commands.subscriptions", "notifier.opml", "http.server",
                   "aiohttp", "psycopg"}
"""Templates, the other commands' modules (`preview`, `demo`'s web server, OPML), and
aiohttp (the admin page's server only: feeds are fetched over `notifier.http1`)."""


def test_a_run_that_finds_nothing_new_loads_no_templates_nor_other_commands(
        tmp_path: Path, blog_server: BlogServer, smtp_server: SmtpServer) -> None:
    config = str(write_config(tmp_path, blog_server, smtp_server))
    code, _, output = notifier("run", "--once", "-c", config, cwd=tmp_path)
    assert code == 0 and "baseline: 3 entries recorded" in output
    code, modules, output = notifier("run", "--once", "-c", config, cwd=tmp_path)
    assert code == 0 and output == ""
    polled = {"notifier.http1", "notifier.store.sql", "notifier.channels.email"}
    assert polled <= modules
    assert not modules & NOT_FOR_POLLING, modules & NOT_FOR_POLLING
    assert smtp_server.messages == []
    # The next comment is rendered and mailed by a process that has not loaded Jinja2 yet.
    blog_server.scenario = "02-markup-comment"
    code, modules, _ = notifier("run", "--once", "-c", config, cwd=tmp_path)
    assert code == 0 and "jinja2" in modules
    assert len(smtp_server.messages) == 1


def test_help_and_version_load_neither_the_configuration_nor_the_store(
        tmp_path: Path) -> None:
    for args in (["--help"], ["--version"]):
        code, modules, output = notifier(*args, cwd=tmp_path)
        assert code == 0 and output.startswith(("usage: notifier", "notifier 0.")), output
        assert not modules & {"pydantic", "sqlite3", "aiohttp", "yaml"}, args
        assert not any(m.startswith("notifier.commands.") and m != "notifier.commands.common"
                       for m in modules), args
    code, modules, output = notifier("run", "--help", cwd=tmp_path)
    assert code == 0 and "--once" in output  # the command's own options, from its module
    assert "notifier.commands.run" in modules and "notifier.commands.check" not in modules
