"""Golden files: records as stable JSON, compared with (or, on request, written to) a file.

Run the tests with `UPDATE_GOLDEN=1` after an intended change, then read the diff of
`tests/golden/` before committing it: the golden files are the specification.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def plain(value: Any, shorten: Callable[[str], str] | None = None) -> Any:
    """JSON-ready form of records: stable field order, datetimes as ISO strings.

    `shorten`, when given, is applied to every string (to keep golden files of long feeds
    readable while still pinning every field).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name), shorten) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {key: plain(item, shorten) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [plain(item, shorten) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and shorten is not None:
        return shorten(value)
    return value


def check_golden(name: str, value: Any, shorten: Callable[[str], str] | None = None) -> None:
    path = GOLDEN / name
    text = json.dumps(plain(value, shorten), indent=2, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path.name}: run with UPDATE_GOLDEN=1"
    assert json.loads(text) == json.loads(path.read_text(encoding="utf-8"))
