"""Each browser's secret cookie (ui/browsers.py): set once, by a page, HttpOnly, never replaced."""
import asyncio

from ui.browsers import COOKIE, BrowserCookie


def answer(content_type: bytes, headers=(), scheme="http"):
    """The response headers a request with `headers` gets from an app answering `content_type`."""
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
        await send({"type": "http.response.body", "body": b"..."})

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "scheme": scheme, "headers": list(headers)}
    asyncio.run(BrowserCookie(app)(scope, None, send))
    return [v.decode() for k, v in sent[0]["headers"] if k == b"set-cookie"]


def test_a_page_sets_an_httponly_secret_that_differs_for_every_browser():
    first, second = answer(b"text/html; charset=utf-8"), answer(b"text/html")
    assert len(first) == len(second) == 1
    for cookie in first + second:
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert "Secure" not in cookie  # plain HTTP: a Secure cookie would never come back
        assert len(cookie.split(";")[0].split("=", 1)[1]) >= 40  # 32 random bytes, urlsafe
    assert first[0].split(";")[0] != second[0].split(";")[0]


def test_a_browser_that_has_one_keeps_it_and_scripts_never_set_one():
    assert answer(b"text/html", [(b"cookie", f"other=1; {COOKIE}=abc".encode())]) == []
    assert answer(b"application/javascript") == [] and answer(b"image/png") == []


def test_behind_tls_the_secret_is_secure():
    assert "Secure" in answer(b"text/html", scheme="https")[0]
    assert "Secure" in answer(b"text/html", [(b"x-forwarded-proto", b"https")])[0]
