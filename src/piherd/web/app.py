"""The dashboard as an ASGI app (starlette): one page, /api/state, drain/resume, /metrics.

Everything lives in a Dashboard object (no globals): the backend it polls, the state it
keeps, its own Prometheus registry. A token, when set, is required by every data route
(header `Authorization: Bearer T`, `X-Piherd-Token: T`, or `?token=T`). POSTs must be
JSON from the same origin, so another web page cannot press the buttons. Without a token
only requests naming the served host (`hosts`) are answered, so a DNS-rebinding page
cannot reach it; every response forbids framing and foreign content (web/guards.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib import resources
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from piherd.web import metrics
from piherd.web.backend import Backend
from piherd.web.dashboard_state import DashboardState
from piherd.web.guards import LOOPBACK_NAMES, SecurityHeaders

log = logging.getLogger(__name__)

STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
DASHBOARD_REASON = "dashboard:"


def static_text(name: str) -> str:
    """A file shipped in piherd/web/static/."""
    return (resources.files("piherd.web") / "static" / name).read_text(encoding="utf-8")


class Dashboard:
    """One dashboard: its backend (entered on startup), state, registry and routes."""

    def __init__(
        self,
        backend: Callable[[], AbstractAsyncContextManager[Backend]],
        *,
        interval: float = 2.0,
        token: str | None = None,
        history_s: float = 3600.0,
        hosts: Sequence[str] = LOOPBACK_NAMES,
    ) -> None:
        if token is not None and not token.strip():
            raise ValueError("the dashboard token is empty or only whitespace")
        self.open_backend = backend
        self.interval = interval
        self.token = token
        self.hosts = tuple(hosts)  # Host header names answered when there is no token
        self.state = DashboardState(interval=interval, history_s=history_s)
        self.registry = metrics.make_registry(self.state)
        self.backend: Backend | None = None
        self.last_error: str | None = None
        self._wake: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        async with self.open_backend() as backend:
            self.backend = backend
            self._wake = asyncio.Event()
            task = asyncio.ensure_future(self._poll(backend))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                self.backend = None

    async def _poll(self, backend: Backend) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            try:
                self.state.update(await backend.round())
                self.last_error = None
            except Exception as exc:  # keep serving the last round; say what failed
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("dashboard round failed: %s", self.last_error)
            wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await wake.wait()

    # -- auth -----------------------------------------------------------------------

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        offered = request.query_params.get("token") or request.headers.get("x-piherd-token", "")
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            offered = bearer[7:].strip()
        return hmac.compare_digest(offered.encode(), self.token.encode())

    @staticmethod
    def same_origin_json(request: Request) -> bool:
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return False
        origin = request.headers.get("origin")
        return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")

    # -- routes ---------------------------------------------------------------------

    # The page and its assets hold no cluster data; the token guards the data routes.
    async def index(self, request: Request) -> Response:
        return HTMLResponse(static_text("index.html"))

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found\n", status_code=404, media_type="text/plain")
        return Response(static_text(name), media_type=STATIC[name])

    async def api_state(self, request: Request) -> Response:
        if not self.authorized(request):
            return _denied()
        data = self.state.as_dict()
        data["error"] = self.last_error
        return JSONResponse(data)

    async def metrics(self, request: Request) -> Response:
        if not self.authorized(request):
            return _denied()
        return Response(metrics.render(self.registry), media_type="text/plain; version=0.0.4")

    async def node_action(self, request: Request) -> Response:
        if not self.authorized(request):
            return _denied()
        if not self.same_origin_json(request):
            return JSONResponse({"error": "send JSON from the dashboard's own page"}, 403)
        backend = self.backend
        node, action = request.path_params["node"], request.path_params["action"]
        if backend is None:
            return JSONResponse({"error": "not ready"}, 503)
        if node not in backend.nodes:
            return JSONResponse({"error": f"no node {node!r} on this dashboard"}, 404)
        if action == "drain":
            try:
                body = await request.json()
            except ValueError:
                body = {}
            text = body.get("reason") if isinstance(body, dict) else None
            reason = " ".join(str(text or "drained from the dashboard").split())[:200]
            error = await backend.drain(node, f"{DASHBOARD_REASON} {reason}")
        elif action == "resume":
            error = await backend.resume(node)
        else:
            return JSONResponse({"error": f"unknown action {action!r}"}, 404)
        if self._wake is not None:
            self._wake.set()
        if error is not None:
            return JSONResponse({"ok": False, "error": error}, 502)
        return JSONResponse({"ok": True, "node": node, "action": action})

    def app(self) -> Starlette:
        """The ASGI application."""
        middleware = [Middleware(SecurityHeaders)]
        if self.token is None:
            middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=list(self.hosts)))
        return Starlette(
            routes=[
                Route("/", self.index),
                Route("/static/{name}", self.static),
                Route("/api/state", self.api_state),
                Route("/api/nodes/{node}/{action}", self.node_action, methods=["POST"]),
                Route("/metrics", self.metrics),
            ],
            lifespan=self.lifespan,
            middleware=middleware,
        )


def _denied() -> Response:
    return JSONResponse(
        {"error": "token required"}, 401, headers={"WWW-Authenticate": 'Bearer realm="piherd"'}
    )
