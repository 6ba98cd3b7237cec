"""OData-style paging of the k6 v6 lists: ``$top``, ``$skip``, ``$count``, ``@nextLink``.

``$top`` defaults to and may not exceed 1000; ``$top=0`` answers an empty page (useful with
``$count``) and no ``@nextLink``, since a next page of zero items would never end.
``@nextLink`` is absolute (TICKWORK_PUBLIC_URL when set, else the request's own base) and
present while items remain after this page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel

from tickwork.api.deps import PlainInt

MAX_TOP = 1000
MAX_SKIP = 2**53 - 1  # keeps skip + top inside Redis's 64-bit range arguments


@dataclass(frozen=True, slots=True)
class PageQuery:
    top: int
    skip: int
    count: bool


async def _page_query(
    top: Annotated[
        int,
        PlainInt,
        Query(alias="$top", ge=0, le=MAX_TOP, description="Number of results to return per page."),
    ] = MAX_TOP,
    skip: Annotated[
        int,
        PlainInt,
        Query(
            alias="$skip",
            ge=0,
            le=MAX_SKIP,
            description="The initial index from which to return the results.",
        ),
    ] = 0,
    count: Annotated[
        bool,
        Query(
            alias="$count",
            description="Include collection length in the response object as `@count`.",
        ),
    ] = False,
) -> PageQuery:
    return PageQuery(top=top, skip=skip, count=count)


Paging = Annotated[PageQuery, Depends(_page_query)]


def next_link(
    request: Request, public_url: str | None, query: PageQuery, extra: Mapping[str, str]
) -> str:
    base = (public_url or str(request.base_url)).rstrip("/")
    params: dict[str, str] = {**extra, "$skip": str(query.skip + query.top), "$top": str(query.top)}
    if query.count:
        params["$count"] = "true"
    return f"{base}{request.url.path}?{urlencode(params, safe='$')}"


def page_response(
    model: type[BaseModel],
    values: Sequence[BaseModel],
    total: int,
    *,
    query: PageQuery,
    request: Request,
    public_url: str | None,
    extra: Mapping[str, str] | None = None,
) -> Response:
    """The list body: ``value``, then ``@count`` and ``@nextLink`` only when they apply."""
    more = query.top > 0 and query.skip + query.top < total
    page = model(
        value=list(values),
        count=total if query.count else None,
        next_link=next_link(request, public_url, query, extra or {}) if more else None,
    )
    absent = {name for name in ("count", "next_link") if getattr(page, name) is None}
    return Response(
        page.model_dump_json(by_alias=True, exclude=absent), media_type="application/json"
    )
