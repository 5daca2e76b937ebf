"""The one text catalogue of the console and the notifier (deltasense/i18n.json): both languages carry every
key, Vietnamese has its diacritics, and every key the page and scripts use exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from deltasense.catalogue import CATALOGUE_PATH
from deltasense.contract import ALL_FIELDS

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
CATALOGUE = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))


def test_no_key_is_missing_in_either_language() -> None:
    assert set(CATALOGUE) == {"vi", "en"}
    vi, en = set(CATALOGUE["vi"]), set(CATALOGUE["en"])
    assert vi - en == set(), "keys missing in en"
    assert en - vi == set(), "keys missing in vi"
    for lang, texts in CATALOGUE.items():
        empty = [k for k, v in texts.items() if not isinstance(v, str) or not v.strip()]
        assert empty == [], f"{lang}: empty texts {empty}"


def test_vietnamese_is_written_with_its_diacritics() -> None:
    vi = CATALOGUE["vi"]
    assert vi["offline"] == "mất kết nối" and vi["critical"] == "nghiêm trọng"
    assert vi["tile_rain"] == "Mưa từ 07:00"
    # Unaccented spellings of words that have accents are the typical slip.
    for slip in ("canh bao", "thiet bi", "Dang nhap", "phuong", "nghiem trong"):
        assert not [k for k, v in vi.items() if slip in v.lower()], slip


def _used_keys() -> set[str]:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    keys = set(re.findall(r'data-i18n(?:-label)?="([a-z0-9_]+)"', html))
    for script in STATIC.glob("*.js"):
        keys |= set(re.findall(r'\bt\("([a-z0-9_]+)"\)', script.read_text(encoding="utf-8")))
    return keys


def test_every_key_the_console_uses_is_in_the_catalogue() -> None:
    used = _used_keys()
    assert len(used) > 40
    assert used - set(CATALOGUE["vi"]) == set()


def test_every_contract_field_has_a_label_in_both_languages() -> None:
    for lang in ("vi", "en"):
        missing = sorted(f for f in ALL_FIELDS if f"f_{f}" not in CATALOGUE[lang])
        assert missing == [], f"{lang}: {missing}"


def test_the_console_has_no_inline_script_style_or_handler() -> None:
    """Content-Security-Policy script-src/style-src 'self': nothing inline."""
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html)
    for script in STATIC.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        assert ".innerHTML" not in text and "eval(" not in text, script.name
        assert 'setAttribute("style"' not in text, script.name
