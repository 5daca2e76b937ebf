"""CSV export (RFC 4180) of a series and of alert history, safe to open in a spreadsheet.

Asked for with ``?format=csv`` or ``Accept: text/csv`` (``format=json`` wins over
the header).  Cells are quoted where needed (comma, quote, CR/LF) by the csv
module; a text cell that a spreadsheet would run as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a CR) gets a leading ``'``.  Numbers the
API writes itself (times, values) are never altered: ``-3.5`` stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

from fastapi import Query, Request
from fastapi.responses import Response

CSV_TYPE: Final = "text/csv; charset=utf-8"
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
Cell = str | int | float | bool | None

FormatQuery = Annotated[
    Literal["json", "csv"] | None,
    Query(description="`csv` for CSV (as `Accept: text/csv`); JSON otherwise."),
]


def wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return any(part.split(";")[0].strip().lower() == "text/csv" for part in accept.split(","))


def safe_cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(c) for c in row])
    return out.getvalue()


def csv_response(
    header: Sequence[str],
    rows: Iterable[Sequence[Cell]],
    filename: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    return Response(
        render(header, rows),
        media_type=CSV_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', **(headers or {})},
    )


CSV_RESPONSE: Final[dict[int | str, dict[str, Any]]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}
