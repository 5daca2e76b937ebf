"""The operator console: static files, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import SettingsDep
from deltasense.catalogue import CATALOGUE_PATH

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
_OFFSET_SLOT = 'data-utc-offset-min=""'

router = APIRouter(include_in_schema=False)


def index_html(utc_offset_min: int) -> str:
    """The console page carrying the site's UTC offset, so it shows the site's local time."""
    page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    if _OFFSET_SLOT not in page:
        raise RuntimeError(f"index.html lacks {_OFFSET_SLOT}")
    return page.replace(_OFFSET_SLOT, f'data-utc-offset-min="{utc_offset_min}"', 1)


@router.get("/")
async def index(settings: SettingsDep) -> HTMLResponse:
    return HTMLResponse(index_html(settings.utc_offset_min), headers={"Cache-Control": "no-cache"})


@router.get("/static/i18n.json")
async def catalogue() -> FileResponse:
    """The shared vi/en catalogue (deltasense/i18n.json, also the notifier's words) at
    the URL the console has always read it from; registered before the /static mount."""
    return FileResponse(
        CATALOGUE_PATH, media_type="application/json", headers={"Cache-Control": "no-cache"}
    )


@router.get("/docs")
async def docs() -> HTMLResponse:
    """Swagger UI over /openapi.json, from api/static/vendor (npm swagger-ui-dist; no CDN)
    and started by /static/docs.js (the CSP allows no inline script)."""
    return HTMLResponse((STATIC_DIR / "docs.html").read_text(encoding="utf-8"))


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    """ReDoc over /openapi.json, from api/static/vendor (npm redoc; no CDN); its page
    alone may use inline styles (api/headers.py)."""
    return HTMLResponse((STATIC_DIR / "redoc.html").read_text(encoding="utf-8"))
