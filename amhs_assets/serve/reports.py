"""The report pages of $AMHS_DATA_DIR/reports (/dashboard, /evaluation, /drift) and the
JavaScript they share (/assets/...).

The pages load plotly.js (and drift.html Evidently's bundle) by the relative path `assets/<file>`
so that they open from disk; served at the root, the same path is /assets/<file> for every page,
one URL per file. Those files carry their library's version in their name, so they are cached
for a year, immutable: a browser fetches plotly.js once for all the pages. The pages change
with every run: they are revalidated (ETag) on each visit.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from amhs_assets.html import ASSETS_DIR
from amhs_assets.serve.routes import error
from amhs_assets.serve.schemas import ErrorResponse

router = APIRouter()
PAGES = {  # route -> (file under reports/, the asset that writes it)
    "dashboard": ("dashboard.html", "monitoring_dashboard"),
    "evaluation": ("evaluation.html", "evaluation_report"),
    "drift": ("drift.html", "drift_report"),
}
ASSET_TYPES = {".js": "text/javascript", ".woff2": "font/woff2"}  # drift.html: Evidently's font
ASSET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # no path, no hidden file
PAGE_CACHE = "no-cache"  # revalidate: a page changes with every run
ASSET_CACHE = "public, max-age=31536000, immutable"  # versioned file names


def file_answer(request: Request, path: Path, media_type: str, cache: str) -> Response:
    """The file with its caching headers and an ETag; 304 when the browser holds this version."""
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {"Cache-Control": cache, "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media_type, headers=headers)


def _page_route(route: str, file: str, asset: str) -> None:
    """GET /<route>: reports/<file>, or 404 naming the asset that writes it."""
    async def page(request: Request) -> Response:
        path = request.app.state.settings.layout.reports / file
        if not path.is_file():
            return error(404, f"no {route} page at {path}: materialize the {asset} asset")
        return file_answer(request, path, "text/html", PAGE_CACHE)

    page.__doc__ = f"reports/{file} ($AMHS_DATA_DIR) when it exists; it loads /{ASSETS_DIR}/..."
    router.add_api_route(
        f"/{route}", page, methods=["GET"], response_class=FileResponse,
        summary=f"The {file} report page", name=f"{route}_page",
        responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}},
                   404: {"model": ErrorResponse, "description": f"no {file} yet"}})


for _route, (_file, _asset) in PAGES.items():
    _page_route(_route, _file, _asset)


@router.get(f"/{ASSETS_DIR}/{{name}}", response_class=FileResponse,
            summary="JavaScript the report pages share",
            responses={200: {"content": {"text/javascript": {"schema": {"type": "string"}}}},
                       404: {"model": ErrorResponse, "description": "no such file"}})
async def shared_asset(request: Request, name: str) -> Response:
    """A file of reports/assets/ (plotly.js, Evidently's bundle), cached for a year: its name
    carries its version."""
    folder = request.app.state.settings.layout.reports / ASSETS_DIR
    media_type = ASSET_TYPES.get(Path(name).suffix)
    path = folder / name
    if not (ASSET_NAME.fullmatch(name) and media_type and path.is_file()):
        return error(404, f"no shared report file {name!r} in {folder}: it is written with "
                           "the first report page (evaluation_report, monitoring_dashboard)")
    return file_answer(request, path, media_type, ASSET_CACHE)
