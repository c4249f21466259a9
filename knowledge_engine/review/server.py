"""`pcle prompts serve`: the review page over HTTP (Starlette, server-rendered HTML, htmx).

Every page and fragment is rendered here from `Review`; the only JavaScript is htmx, served from this
package (static/htmx.min.js, htmx 2.0.11, 0BSD), so the page works without network access. A refused
change answers 4xx with the message, which htmx puts in the status line (HX-Retarget). Changes run in
the thread pool, so a regeneration waiting on the model blocks no other request.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from corpus import PART_NAMES, CorpusError
from knowledge_engine.errors import KnowledgeEngineError
from knowledge_engine.review.session import Review, Row, keep

HERE = Path(__file__).resolve().parent
ENV = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
ENV.globals["part_names"] = PART_NAMES


# What a change may fail with: one line on the page. OSError: a cache or log the regeneration cannot write.
REFUSED = (KnowledgeEngineError, CorpusError, KeyError, ValueError, OSError)


def _filters(params) -> dict:
    return {"q": params.get("q", "").strip(), "check": params.get("check", ""),
            "edited": params.get("edited") == "1", "fallback": params.get("fallback") == "1"}


def _render_rows(review: Review, filters: dict) -> str:
    every = review.rows()
    rows = [r for r in every if keep(r, filters["q"], filters["check"], filters["edited"], filters["fallback"])]
    return ENV.get_template("rows.html").render(review=review, rows=rows, total=len(every))


def _macro(name: str):
    return getattr(ENV.get_template("row.html").module, name)


def _status(message: str, level: str = "ok", oob: bool = True) -> str:
    tag = ' id="status" role="status" hx-swap-oob="true"' if oob else ""
    body = f'<div class="{level}" role="alert">{ENV.filters["e"](message)}</div>'
    return f"<div{tag}>{body}</div>" if oob else body


def _refused(message: str) -> HTMLResponse:
    status = 409 if "changed since" in message else 422
    return HTMLResponse(_status(message, "error", oob=False), status_code=status,
                        headers={"HX-Retarget": "#status", "HX-Reswap": "innerHTML"})


def _versions(review: Review) -> str:
    return "".join(_macro("version_input")(review, i, True) for i in range(len(review.corpora)))


def _changed_rows(review: Review, before: dict[str, str], skip: str) -> str:
    """Rows other than the edited one whose findings changed (near-duplicates and shared parts span classes)."""
    out = []
    for row in review.rows():
        html = str(_macro("row_html")(row, review))
        if row.key != skip and before.get(row.key) not in (None, html):
            out.append(html.replace(f'id="cls-{row.slug}"', f'id="cls-{row.slug}" hx-swap-oob="true"', 1))
    return "".join(out)


def _snapshot(review: Review) -> dict[str, str]:
    return {row.key: str(_macro("row_html")(row, review)) for row in review.rows()}


def make_app(review: Review) -> Starlette:
    def page(request: Request) -> HTMLResponse:
        filters = _filters(request.query_params)
        html = ENV.get_template("page.html").render(review=review, filters=filters, checks=review.checks(),
                                                    rows_html=Markup(_render_rows(review, filters)))
        return HTMLResponse(html)

    def rows(request: Request) -> HTMLResponse:
        html = _render_rows(review, _filters(request.query_params))
        query = urlencode({k: v for k, v in request.query_params.items() if v})
        return HTMLResponse(html, headers={"HX-Push-Url": "/" + (f"?{query}" if query else "")})

    async def change(request: Request, act) -> HTMLResponse:
        """Run one change; answer the changed row, the new versions, the status line and the other rows
        whose findings moved, or the refusal."""
        form = await request.form()
        try:
            before = _snapshot(review)
            message, row = await run_in_threadpool(act, form)
        except REFUSED as e:
            return _refused(_message(e))
        html = str(_macro("row_html")(row, review))
        return HTMLResponse(html + _versions(review) + _status(message) + _changed_rows(review, before, row.key))

    def do_edit(form) -> tuple[str, Row]:
        i, class_id = int(form["corpus"]), int(form["class_id"])
        message = review.edit(i, class_id, str(form["field"]), str(form.get("value", "")),
                              str(form.get(f"version-{i}", "")), str(form.get("op", "set")))
        return message, _row_of(review, i, class_id)

    def do_accept(form) -> tuple[str, Row]:
        key = str(form["key"])
        versions = [str(form.get(f"version-{i}", "")) for i in range(len(review.corpora))]
        return review.accept(key, int(form["source"]), versions), review.row(key)

    def do_accept_proposal(form) -> tuple[str, Row]:
        i, class_id = int(form["corpus"]), int(form["class_id"])
        message = review.accept_proposal(i, class_id, str(form.get(f"version-{i}", "")), form.get("confirm") == "1")
        return message, _row_of(review, i, class_id)

    async def edit(request: Request) -> HTMLResponse:
        return await change(request, do_edit)

    async def accept_proposal(request: Request) -> HTMLResponse:
        return await change(request, do_accept_proposal)

    async def regenerate(request: Request) -> HTMLResponse:
        """Ask the model (in the thread pool: the page stays usable); answer the proposal, out of band."""
        form = await request.form()
        try:
            i, class_id = int(form["corpus"]), int(form["class_id"])
            message = await run_in_threadpool(review.regenerate, i, class_id, int(form.get("sample", 0)))
        except REFUSED as e:
            return _refused(_message(e))
        return HTMLResponse(_proposal_slot(review, i, class_id) + _status(message))

    async def discard(request: Request) -> HTMLResponse:
        form = await request.form()
        try:
            i, class_id = int(form["corpus"]), int(form["class_id"])
            message = review.discard_proposal(i, class_id)
        except REFUSED as e:
            return _refused(_message(e))
        return HTMLResponse(_proposal_slot(review, i, class_id) + _status(message))

    async def accept(request: Request) -> HTMLResponse:
        return await change(request, do_accept)

    async def undo(request: Request) -> HTMLResponse:
        form = await request.form()
        try:
            message = review.undo(int(form["corpus"]))
        except REFUSED as e:
            return _refused(_message(e))
        html = _render_rows(review, _filters(form))
        return HTMLResponse(html + _versions(review) + _status(message))

    routes = [
        Route("/", page),
        Route("/rows", rows),
        Route("/edit", edit, methods=["POST"]),
        Route("/accept", accept, methods=["POST"]),
        Route("/undo", undo, methods=["POST"]),
        Route("/regenerate", regenerate, methods=["POST"]),
        Route("/regenerate/accept", accept_proposal, methods=["POST"]),
        Route("/regenerate/discard", discard, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes)


def _row_of(review: Review, i: int, class_id: int) -> Row:
    return next(r for r in review.rows() if r.cells[i] and r.cells[i].record["class_id"] == class_id)


def _proposal_slot(review: Review, i: int, class_id: int) -> str:
    """The proposal box of one cell, swapped by its id (the row may have been re-rendered meanwhile)."""
    row = _row_of(review, i, class_id)
    return str(_macro("proposal_slot")(row, row.cells[i], review, True))


def _message(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"the request lacks the form field {e}"
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}"
    return str(e)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free one), so the printed URL is the one that answers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise KnowledgeEngineError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port") from None
    sock.listen(128)
    return sock


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(review: Review, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve until Ctrl-C; prints one line with the URL to open (every change is already on disk)."""
    import uvicorn

    sock = bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    if not _loopback(host):
        print(f"warning: listening on {host}: anyone who can reach this machine can edit the corpora",
              file=sys.stderr, flush=True)
    print(f"review page: open {url} (Ctrl-C stops; every change is saved as it is made)", flush=True)
    config = uvicorn.Config(make_app(review), log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
