"""Export the generated OpenAPI document (``docs/openapi.json``)."""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

from api.app import create_app
from deltasense.settings import Settings


def build() -> dict[str, object]:
    # Throwaway settings: the schema does not depend on them, and no token file
    # may be written into the real var/ just to render a document.
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(var_dir=Path(tmp), admin_token=secrets.token_urlsafe(32)))
        return app.openapi()


def export(path: Path | str) -> None:
    """Write the OpenAPI JSON (sorted keys, indented, trailing newline)."""
    text = json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    Path(path).write_text(text, encoding="utf-8")
