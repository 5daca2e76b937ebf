"""Unknown query parameters are refused, not ignored.

``?offset=50`` used to be silently dropped: a client believed it paged and got
the first page again.  Every ``/api/v1`` route now answers 422 naming each query
parameter it does not declare (its own and its dependencies'), except the
credential names, which the authentication refuses with its own 400.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api.deps import URL_CREDENTIALS
from api.problems import ParamProblem


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


_CACHE = "_deltasense_query_names"  # kept on the route: computed once per route


def declared(route: APIRoute) -> frozenset[str]:
    names: frozenset[str] | None = getattr(route, _CACHE, None)
    if names is None:
        names = frozenset(_query_names(route.dependant))
        setattr(route, _CACHE, names)
    return names


async def refuse_unknown_query(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = declared(route) | set(URL_CREDENTIALS)
    unknown = sorted({k for k in request.query_params if k not in known})
    if unknown:
        names = ", ".join(repr(k[:40]) for k in unknown[:10])
        allowed = ", ".join(sorted(declared(route))) or "none"
        raise ParamProblem(
            f"unknown query parameter {names}; this endpoint takes: {allowed}",
            *(["query", k[:40]] for k in unknown[:10]),
        )
