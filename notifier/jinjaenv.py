"""The Jinja2 half of `notifier.render`: its environments, its template loader, its error.

Kept apart so that Jinja2 is imported when the first template is needed, not at every start:
a run that finds nothing new renders nothing, and importing Jinja2 was a tenth of the CPU of
such a run's imports that were not the HTTP client, the SQL layer or the validation.
`notifier.render` imports this module on the renderer's first template.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jinja2

from notifier.errors import NotifierError
from notifier.render import _FILE, _PACKAGED, QUOTE_STYLE, _shown, quote, quote_bars


class RenderError(NotifierError, jinja2.TemplateError):
    """A template could not be loaded, compiled or rendered.

    The message names the template as the user knows it (the configured file, or the
    packaged default) and the line, because the fix is an edit to that file.
    """

    def __init__(self, template: str, message: str, lineno: int | None = None) -> None:
        where = f"{template}, line {lineno}" if lineno else template
        super().__init__(f"template {where}: {message}")
        self.template = template
        self.lineno = lineno


class _Loader(jinja2.BaseLoader):
    """Two namespaces: `packaged:<kind>/<slot>.j2` and `file:<path from base_dir>`.

    Names without a prefix (a user's `{% include "footer.j2" %}`) are files too.
    """

    def __init__(self, base_dir: Path, shown: dict[str, str]) -> None:
        self.base_dir = base_dir
        self.packaged = jinja2.PackageLoader("notifier", "templates")
        self.shown = shown
        """Each loaded file's path -> the name errors show (as configured, or "(packaged)")."""

    def get_source(self, environment: jinja2.Environment, template: str
                   ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template.startswith(_PACKAGED):
            source, filename, uptodate = self.packaged.get_source(
                environment, template.removeprefix(_PACKAGED))
            if filename:
                self.shown[filename] = _shown(template)
            return source, filename, uptodate
        path = self.base_dir / template.removeprefix(_FILE)
        try:
            source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise jinja2.TemplateNotFound(template) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise jinja2.TemplateNotFound(f"{template} ({exc})") from None
        self.shown[str(path)] = _shown(template)
        return source, str(path), lambda: True


def environments(base_dir: Path, shown: dict[str, str]) -> dict[bool, jinja2.Environment]:
    """The environment for HTML slots (autoescaped, key True) and the one for the others;
    `shown` learns the name to show of each file they load."""
    loader = _Loader(base_dir, shown)
    envs = {html: jinja2.Environment(autoescape=html, loader=loader,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True,
                                     lstrip_blocks=True, auto_reload=False)
            for html in (True, False)}
    for env in envs.values():
        env.filters["quote"] = quote
        env.filters["quote_bars"] = quote_bars
        env.globals["quote_style"] = QUOTE_STYLE
    return envs
