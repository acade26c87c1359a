"""``coi web``: the HTTP side of the browser app.

The app is static files (``coi/web/static``: no CDN, nothing fetched at run time) and a
JSON API on the client library (``coi.web.api``), with live events over server-sent
events.  This module holds what every request goes through: security headers, the
session cookie, the CSRF check and the login itself (docs/web.md: Security).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from coi.auth.throttle import LoginThrottle
from coi.client.client import ClientError
from coi.client.profile import ProfileError
from coi.web.accounts import Accounts, LoginFailed, LoginUnavailable
from coi.web.runtime import Runtimes, UserRuntime
from coi.web.sessions import Session, SessionStore

log = logging.getLogger(__name__)

COOKIE = "coi_session"
CSRF_HEADER = "X-CSRF-Token"
STATIC = resources.files("coi.web") / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:;"
    " connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self';"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPEN_PATHS = frozenset({"/api/login"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class WebState:
    accounts: Accounts
    sessions: SessionStore
    runtimes: Runtimes = field(default_factory=Runtimes)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    secure_cookies: bool = False
    max_upload: int = 25 * 1024 * 1024
    push_client_name: str = "coi web"


STATE = web.AppKey("state", WebState)


class ApiError(Exception):
    """An API failure the user can act on: answered as ``{"error": ...}``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def state(request: web.Request) -> WebState:
    return request.app[STATE]


# the logged-in person of the request being handled (each request runs in its own task,
# so its own context)
_CURRENT: ContextVar[tuple[Session, UserRuntime]] = ContextVar("coi_web_current")


def session_of(request: web.Request) -> Session:
    return _CURRENT.get()[0]


def runtime_of(request: web.Request) -> UserRuntime:
    return _CURRENT.get()[1]


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError:
        raise ApiError("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError("the request body must be a JSON object")
    return data


def _same_origin(request: web.Request) -> bool:
    """A state change must come from our own pages: Origin (or Referer) names our host."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if origin is None:
        return True  # not a browser's cross-site request: browsers send Origin on POST
    return urlsplit(origin).netloc.lower() == request.host.lower()


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sessions and CSRF for the API; errors as one JSON line."""
    try:
        if request.path.startswith("/api/"):
            if request.method not in _SAFE_METHODS and not _same_origin(request):
                raise ApiError("cross-site request refused", 403)
            if request.path not in _OPEN_PATHS:
                _authenticate(request)
        return await handler(request)
    except ApiError as exc:
        return web.json_response({"error": str(exc)}, status=exc.status)
    except (ClientError, ProfileError) as exc:
        return web.json_response({"error": str(exc)}, status=400)


def _authenticate(request: web.Request) -> None:
    st = state(request)
    token = request.cookies.get(COOKIE, "")
    session = st.sessions.get(token) if token else None
    if session is None:
        raise ApiError("not logged in", 401)
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise ApiError("missing or wrong CSRF token: reload the page", 403)
    profile_dir = st.accounts.profile_dir(session.address)
    _CURRENT.set((session, st.runtimes.get(str(profile_dir), profile_dir)))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


# -- login ---------------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    st = state(request)
    data = await read_json(request)
    address = str(data.get("address", "")).strip()
    password = str(data.get("password", ""))
    if not address or not password:
        raise ApiError("give your mail address and password")
    keys = (f"ip:{request.remote}", f"user:{address.lower()}")
    delay = st.throttle.delay(*keys)
    if delay:
        await asyncio.sleep(delay)
    try:
        profile_dir = await st.accounts.login(address, password)
    except LoginFailed as exc:
        st.throttle.failed(*keys)
        log.info("web login failed for %s from %s", address, request.remote)
        raise ApiError(str(exc), 401) from None
    except LoginUnavailable as exc:
        raise ApiError(str(exc), 502) from None
    st.throttle.succeeded(*keys)
    token, session = st.sessions.create(address.lower())
    runtime = st.runtimes.get(str(profile_dir), profile_dir)
    log.info("web login of %s from %s", address, request.remote)
    response = web.json_response(me_view(session, runtime))
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        secure=st.secure_cookies or request.secure,
        samesite="Strict",
        path="/",
        max_age=30 * 24 * 3600,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    from coi.web import push

    session = session_of(request)
    await push.unsubscribe_session(request)
    state(request).sessions.end(session.token_hash)
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


def me_view(session: Session, runtime: UserRuntime) -> dict[str, Any]:
    accounts = runtime.client.accounts()
    return {
        "address": session.address,
        "csrf": session.csrf,
        "accounts": [
            {
                "id": a.id,
                "address": a.address,
                "name": a.settings.name,
                "server": a.server_kind,
                "filter": a.settings.filter.value,
                "read_receipts": a.settings.read_receipts,
                "encrypt_only": a.settings.encrypt_only,
            }
            for a in accounts
        ],
        "status": runtime.status,
    }


async def me(request: web.Request) -> web.Response:
    return web.json_response(me_view(session_of(request), runtime_of(request)))


# -- static files ----------------------------------------------------------------------


def _static(name: str, content_type: str) -> Handler:
    async def serve(request: web.Request) -> web.Response:
        data = (STATIC / name).read_bytes()
        headers = {"Cache-Control": "no-cache"}
        if name == "sw.js":
            headers["Service-Worker-Allowed"] = "/"
        return web.Response(body=data, content_type=content_type, headers=headers)

    return serve


_ASSETS = {
    "app.js": "text/javascript",
    "app.css": "text/css",
    "sw.js": "text/javascript",
    "icon.svg": "image/svg+xml",
    "manifest.webmanifest": "application/manifest+json",
}


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in _ASSETS:
        raise web.HTTPNotFound()
    return await _static(name, _ASSETS[name])(request)


# -- the application -----------------------------------------------------------------


def create_app(
    accounts: Accounts,
    state_dir: Path,
    *,
    secure_cookies: bool = False,
    max_upload: int = 25 * 1024 * 1024,
) -> web.Application:
    from coi.web import api, push

    app = web.Application(middlewares=[guard], client_max_size=max_upload)
    st = WebState(
        accounts,
        SessionStore(state_dir / "web.sqlite3"),
        secure_cookies=secure_cookies,
        max_upload=max_upload,
    )
    app[STATE] = st
    app.on_response_prepare.append(security_headers)
    index = _static("index.html", "text/html")
    app.router.add_get("/", index)
    app.router.add_get("/chat/{id}", index)  # a notification's link
    app.router.add_get("/sw.js", _static("sw.js", "text/javascript"))
    app.router.add_get(
        "/manifest.webmanifest", _static("manifest.webmanifest", _ASSETS["manifest.webmanifest"])
    )
    app.router.add_get("/static/{name}", asset)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    api.routes(app)
    push.routes(app)

    async def close(app: web.Application) -> None:
        await st.runtimes.close()
        st.sessions.close()

    app.on_shutdown.append(close)
    return app
