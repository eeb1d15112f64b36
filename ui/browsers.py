"""Which browser a session runs in: a secret cookie that never appears in an address.

A run's id sits in the address bar so that a reload finds it, but an address is easily
shared, so it cannot be what lets a session take a run over. The server gives every
browser an HttpOnly cookie with a random secret on the first page it serves; the browser
sends it back with the page's WebSocket, where a session reads it (`key()`). Only a
session whose browser holds the same secret reattaches a run (dl_core/engine/runs.py);
anyone else with the address gets a copy. Runs keep a hash of the secret, never the
secret itself, so the run store on disk gives nothing away.
"""
from __future__ import annotations

import hashlib
import secrets

import streamlit as st

COOKIE = "dllab_browser"
MAX_AGE_S = 30 * 24 * 3600  # a term: a learner's runs are kept for hours, the cookie outlives them


class BrowserCookie:
    """ASGI middleware: a page (an HTML response) sent to a browser without the cookie sets it.

    Only pages set it: the scripts and pictures a page fetches next could race with the page's
    own answer and replace the secret that its WebSocket already carried."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or _has_cookie(scope):
            await self.app(scope, receive, send)
            return
        secure = _secure(scope)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start" and _is_page(message):
                value = f"{COOKIE}={secrets.token_urlsafe(32)}; Path=/; Max-Age={MAX_AGE_S}; HttpOnly; SameSite=Lax"
                message = message | {"headers": [*message.get("headers", []),
                                                 (b"set-cookie", (value + ("; Secure" if secure else "")).encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


def _has_cookie(scope) -> bool:
    return any(name == b"cookie" and f"{COOKIE}=".encode() in value for name, value in scope.get("headers", ()))


def _secure(scope) -> bool:
    """HTTPS reached directly, or through the classroom's HAProxy terminating TLS."""
    forwarded = dict(scope.get("headers", ())).get(b"x-forwarded-proto", b"")
    return scope.get("scheme") == "https" or forwarded == b"https"


def _is_page(message) -> bool:
    return any(name.lower() == b"content-type" and value.startswith(b"text/html")
               for name, value in message.get("headers", ()))


def key() -> str:
    """This session's browser, as a hash of its secret ("" when the browser sent none: a
    scripted client, a test, cookies off; such a session's runs are never reattached)."""
    secret = st.context.cookies.get(COOKIE)
    return hashlib.sha256(secret.encode()).hexdigest()[:32] if isinstance(secret, str) and secret else ""
