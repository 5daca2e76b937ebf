"""The console's colours against WCAG 2.1 AA, read from api/static/app.css itself:
text 4.5:1 on the surface it is drawn on (1.4.3), the focus ring 3:1 on the surfaces
it shows on (1.4.11).  The CSS variables are resolved, so changing a colour in the
stylesheet is what this test checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CSS = (Path(__file__).resolve().parents[2] / "api" / "static" / "app.css").read_text("utf-8")
TEXT_MIN = 4.5
FOCUS_MIN = 3.0
# Rules that give a background and leave the text colour to their parent (the header's
# white): the colour they are drawn with.
INHERITS = {
    ".badge": "#fff",
    ".badge.live": "#fff",
    ".mark": "var(--fg)",
    '.banner[data-state="recovered"]': "#fff",  # .banner's
}
# The light surfaces text with no background of its own sits on.
SURFACES = ("body", ".panel", ".alert", ".tile", ".chart", "button")
DARK_SURFACES = ("header",)  # what the header's controls sit on


def _rules(css: str) -> dict[str, dict[str, str]]:
    """selector → declarations, for plain rules (inside @media too; not @keyframes)."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    css = re.sub(r"@keyframes[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", css)
    out: dict[str, dict[str, str]] = {}
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        decls = {}
        for part in body.split(";"):
            if ":" in part:
                k, v = part.split(":", 1)
                decls[k.strip()] = v.strip()
        for sel in selectors.split(","):
            sel = re.sub(r"^@media[^{]*$", "", sel.strip()).strip()
            if sel:
                out.setdefault(sel, {}).update(decls)
    return out


RULES = _rules(CSS)
VARS = {k: v for k, v in RULES[":root"].items() if k.startswith("--")}


def _colour(value: str) -> tuple[float, float, float, float] | None:
    """A declaration's solid or translucent colour (var() resolved), None if it has none."""
    value = re.sub(r"var\((--[\w-]+)\)", lambda m: VARS[m.group(1)], value)
    if m := re.search(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})\b", value):
        h = m.group(1)
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16), 1.0)
    if m := re.search(r"rgba?\(([^)]*)\)", value):
        parts = [float(p) for p in m.group(1).split(",")]
        return (parts[0], parts[1], parts[2], parts[3] if len(parts) > 3 else 1.0)
    return None


def _luminance(rgb: tuple[float, float, float]) -> float:
    def chan(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = rgb
    return 0.2126 * chan(r) + 0.7152 * chan(g) + 0.0722 * chan(b)


def contrast(fg: str, bg: str) -> float:
    f, b = _colour(fg), _colour(bg)
    assert f is not None and b is not None, (fg, bg)
    fl = _luminance(f[:3])
    # A translucent background is judged over what is worst for this text: black
    # under dark text, white under light text.
    under = 0.0 if fl < 0.5 else 255.0
    bl = _luminance(tuple(b[i] * b[3] + under * (1 - b[3]) for i in range(3)))  # type: ignore[arg-type]
    hi, lo = max(fl, bl), min(fl, bl)
    return (hi + 0.05) / (lo + 0.05)


def _background(decls: dict[str, str]) -> str | None:
    for key in ("background", "background-color"):
        if key in decls and _colour(decls[key]) is not None:
            return decls[key]
    return None


def test_the_reference_values_of_the_formula() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#777", "#fff") == pytest.approx(4.48, abs=0.01)  # the classic near miss
    assert contrast("#767676", "#fff") >= 4.5


PAIRS = [
    (sel, d["color"], bg)
    for sel, d in RULES.items()
    if "color" in d and _colour(d["color"]) and (bg := _background(d))
] + [(sel, INHERITS[sel], _background(RULES[sel]) or "") for sel in INHERITS]


@pytest.mark.parametrize(("selector", "fg", "bg"), PAIRS, ids=[p[0] for p in PAIRS])
def test_text_on_its_own_background_is_at_least_4_5_to_1(selector: str, fg: str, bg: str) -> None:
    assert contrast(fg, bg) >= TEXT_MIN, f"{selector}: {fg} on {bg} is {contrast(fg, bg):.2f}:1"


def test_every_background_rule_says_its_text_colour() -> None:
    """A rule with a background and no colour of its own would escape the check above."""
    silent = [
        sel
        for sel, d in RULES.items()
        if _background(d) and "color" not in d and sel not in INHERITS and sel not in SURFACES
    ]
    allowed = {"#map", ".skip:focus"}  # the map draws no text of its own; the skip link: --fg
    assert set(silent) <= allowed, silent


TEXT_ONLY = sorted(
    {(sel, d["color"]) for sel, d in RULES.items() if "color" in d and not _background(d)}
)


@pytest.mark.parametrize(("selector", "fg"), TEXT_ONLY, ids=[t[0] for t in TEXT_ONLY])
def test_text_colours_are_at_least_4_5_to_1_on_every_light_surface(selector: str, fg: str) -> None:
    if _colour(fg) is None or selector.startswith(("header", "button[aria-pressed")):
        pytest.skip("inherits or sits on the header (checked with the header)")
    for surface in SURFACES:
        bg = _background(RULES[surface])
        assert bg is not None, surface
        ratio = contrast(fg, bg)
        assert ratio >= TEXT_MIN, f"{selector} ({fg}) on {surface} ({bg}): {ratio:.2f}:1"


def test_the_focus_ring_is_visible_on_light_surfaces_and_on_the_header() -> None:
    ring = RULES[":focus-visible"]["outline"]
    for surface in SURFACES:
        bg = _background(RULES[surface])
        assert bg is not None
        assert contrast(ring, bg) >= FOCUS_MIN, (surface, ring, bg)
    on_header = RULES["header :focus-visible"]["outline-color"]
    for surface in DARK_SURFACES:
        bg = _background(RULES[surface])
        assert bg is not None
        assert contrast(on_header, bg) >= FOCUS_MIN, (surface, on_header, bg)
