"""The one vi/en text catalogue of the console and the notifier (``i18n.json``).

It lives in the shared package so both services read the same words: the API serves
the file to the console at ``/static/i18n.json``; the notifier renders its messages
from it. Vietnamese is the default language.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Final, Literal

CATALOGUE_PATH: Final = Path(__file__).resolve().parent / "i18n.json"
LANGUAGES: Final = ("vi", "en")
DEFAULT_LANGUAGE: Final = "vi"

Lang = Literal["vi", "en"]


@cache
def load() -> dict[str, dict[str, str]]:
    """language → key → text, read once; a malformed file fails loudly at first use."""
    data = json.loads(CATALOGUE_PATH.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) != set(LANGUAGES):
        raise ValueError(f"{CATALOGUE_PATH}: languages must be exactly {LANGUAGES}")
    for lang, texts in data.items():
        if not isinstance(texts, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in texts.items()
        ):
            raise ValueError(f"{CATALOGUE_PATH}: {lang} must map keys to strings")
    return data


def text(lang: str, key: str) -> str:
    """The text for ``key`` in ``lang``, falling back to Vietnamese (as the console does)."""
    catalogue = load()
    texts = catalogue.get(lang, catalogue[DEFAULT_LANGUAGE])
    try:
        return texts.get(key) or catalogue[DEFAULT_LANGUAGE][key]
    except KeyError:
        raise KeyError(f"no text {key!r} in the catalogue") from None
