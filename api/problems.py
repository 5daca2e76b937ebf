"""One error shape for every error the API answers: RFC 9457 problem details.

``application/problem+json`` with ``type`` (``about:blank``: the status says it
all), ``title`` (the status phrase), ``status``, ``detail`` (a sentence for the
client) and, for a refused request, ``errors`` (one ``{"loc", "msg", "type"}``
per bad parameter or body field, as FastAPI's validation names them).  Every
route module raises ``HTTPException`` (or a ``ParamError`` through
:func:`param_error`) and gets this shape; the handlers here turn FastAPI's own
validation errors, unknown routes, wrong methods and the app's exceptions into
it too, and :func:`document` puts it, with 401/403 on every protected
operation, into the OpenAPI document.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON: Final = "application/problem+json"
MAX_ERRORS: Final = 20  # a hostile request with 1 000 bad fields gets 20 back, not 1 000


def title_of(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def body(
    status: int, detail: str, *, errors: Sequence[Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "about:blank",
        "title": title_of(status),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        out["errors"] = [dict(e) for e in errors]
    return out


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem(
    status: int,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    return ProblemResponse(
        body(status, detail, errors=errors), status_code=status, headers=dict(headers or {})
    )


class ParamProblem(HTTPException):
    """A 422 that also names the refused parameters in ``errors``."""

    def __init__(self, message: str, *locs: Sequence[str | int]) -> None:
        super().__init__(422, message)
        self.errors = [{"loc": list(loc), "msg": message, "type": "value_error"} for loc in locs]


def param_error(message: str, name: str | None = None) -> HTTPException:
    """A 422 for a query parameter the client got wrong (raise it); ``name`` puts
    ``["query", name]`` into ``errors``."""
    return ParamProblem(message, ["query", name]) if name else ParamProblem(message)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's error list without ``input`` and ``ctx``: the input is the client's own
    (echoing it back reflects whatever it sent), ``ctx`` may hold non-JSON values."""
    out = []
    for err in exc.errors()[:MAX_ERRORS]:
        out.append(
            {
                "loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def _summary(errors: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "request"
        parts.append(f"{where}: {err['msg']}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


async def validation_handler(_: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    return problem(422, _summary(errors) or "invalid request", errors=errors)


async def http_handler(_: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else title_of(exc.status_code)
    errors = None
    if isinstance(exc, ParamProblem):
        errors = exc.errors
    elif exc.status_code == 422:
        errors = []
    return problem(exc.status_code, detail, errors=errors, headers=exc.headers)


# --- OpenAPI --------------------------------------------------------------------------
PROBLEM_SCHEMA: Final[dict[str, Any]] = {
    "title": "Problem",
    "description": "RFC 9457 problem details: every error the API answers has this shape.",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "description": "`about:blank`: the status says what it is."},
        "title": {"type": "string", "description": "The HTTP status phrase."},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for the client."},
        "errors": {
            "type": "array",
            "description": "422 only: each refused parameter or body field.",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        "description": "Where: [query, limit], [body, name], [header, …].",
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}
_REF: Final = {"$ref": "#/components/schemas/Problem"}
_CONTENT: Final = {PROBLEM_JSON: {"schema": _REF}}
_PROTECTED: Final = {
    "401": "No valid token (`WWW-Authenticate: Bearer`).",
    "403": "The token's role is too low for this operation.",
    "429": "Too many failed authentications from this address (`Retry-After`).",
}
_PAGE_HEADERS: Final = {
    "Link": {
        "description": 'The next page: `<…&cursor=…>; rel="next"`; absent on the last page.',
        "schema": {"type": "string"},
    },
    "X-Next-Cursor": {
        "description": "The next page's `cursor`; absent on the last page.",
        "schema": {"type": "string"},
    },
}
_EVERY: Final = {"422": "A parameter or the body is refused; `errors` says which."}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """The generated OpenAPI with the problem shape on every error response, 401/403/429
    on every operation that needs a token, and FastAPI's own validation schema gone."""
    doc = copy.deepcopy(schema)
    components = doc.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Problem"] = PROBLEM_SCHEMA
    for path, item in doc.get("paths", {}).items():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses: dict[str, Any] = op["responses"]
            # /api/v1 refuses unknown query parameters (api/querycheck.py): a 422 anywhere.
            takes_input = bool(op.get("parameters") or op.get("requestBody"))
            wanted = dict(_EVERY) if takes_input or path.startswith("/api/v1/") else {}
            if op.get("security"):
                wanted |= _PROTECTED
            for code, text in wanted.items():
                responses.setdefault(code, {"description": text})
            for code, response in responses.items():
                if code[:1] in {"4", "5"}:
                    response["content"] = copy.deepcopy(_CONTENT)
            if any(p.get("name") == "cursor" for p in op.get("parameters", ())):
                ok = responses.get("200")
                if ok is not None:
                    ok["headers"] = copy.deepcopy(_PAGE_HEADERS)
    return doc
