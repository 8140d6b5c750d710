"""The package as users install it: `python -m build` makes an sdist and a wheel, and each
installs into a new virtual environment and runs, with its templates, demo feeds and
documentation (the systemd unit's `Documentation=`) in place.

Slow (a build and a dependency install, about a minute with a warm pip cache) and needs the
package index; `pytest -m "not packaging"` leaves it out while iterating. CI runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from notifier import __version__

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "contrib" / "notifier.service"


def _run(args: list[str | Path], cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("NOTIFIER_")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"{args}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.packaging
def test_sdist_and_wheel_install_in_a_clean_venv_and_run(tmp_path: Path) -> None:
    # Build from a copy, so the working tree gains no build/ or egg-info.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "*_cache", ".hypothesis", "build", "dist", "*.egg-info",
        "__pycache__", "tests", "benchmarks", "*.db*"))
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, source], tmp_path)
    (wheel,) = dist.glob("notifier-*.whl")
    (sdist,) = dist.glob("notifier-*.tar.gz")

    names = zipfile.ZipFile(wheel).namelist()
    assert "notifier/py.typed" in names
    assert "notifier/templates/email/html.j2" in names
    assert "notifier/demo/2-new-comment.atom.xml" in names
    assert any(n.endswith("data/share/doc/notifier/README.md") for n in names)

    env = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    python, notifier = env / "bin" / "python", env / "bin" / "notifier"
    _run([python, "-m", "pip", "install", "--quiet", wheel], tmp_path)
    assert _run([notifier, "--version"], tmp_path).strip() == f"notifier {__version__}"
    # Templates and the demo's feeds come from the installed package.
    out = _run([notifier, "demo"], tmp_path, timeout=180)
    assert "New comment by Markup Tester" in out
    # The unit's Documentation= names a file the install put in place.
    documented = re.search(r"^Documentation=file:///opt/notifier/(\S+)$", UNIT.read_text(),
                           re.MULTILINE)
    assert documented is not None
    assert (env / documented.group(1)).is_file()

    _run([python, "-m", "pip", "install", "--quiet", "--force-reinstall", "--no-deps",
          sdist], tmp_path)
    assert _run([notifier, "--version"], tmp_path).strip() == f"notifier {__version__}"
    assert (env / documented.group(1)).is_file()
