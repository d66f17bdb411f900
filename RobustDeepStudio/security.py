"""Who may use a studio: loopback only by default, an access token on any other address.

The studio serves patient images. On ``127.0.0.1`` / ``::1`` / ``localhost`` only the machine's own
users reach it (an SSH tunnel is the usual way in from a laptop). On any other address a token is
required: printed at start (or given with ``--token``), opened once as ``http://HOST:PORT/?token=T``,
then kept in a cookie for this site only. :func:`token_middleware` refuses every HTTP request and the
websocket (whose upgrade is an HTTP request carrying the cookie) without it, with 403.

Free of trame and of Slicer (aiohttp, which the studio's web server runs on): tested with plain pytest.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from typing import Any, Awaitable, Callable, Optional

from aiohttp import web

#: The cookie that keeps the token after the first visit.
COOKIE = "robustdeep_studio_token"
#: The query parameter that carries the token on the first visit.
QUERY = "token"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``).

    Parameters
    ----------
    host : str
        The address the server binds to.

    Returns
    -------
    bool
        True for loopback addresses; False for any other (``0.0.0.0`` included).
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def new_token() -> str:
    """A fresh random access token (32 URL-safe characters).

    Returns
    -------
    str
        24 random bytes from :mod:`secrets`, URL-safe base64.
    """
    return secrets.token_urlsafe(24)


def access_token(host: str, token: Optional[str]) -> Optional[str]:
    """The token a server on ``host`` requires: ``token`` if given, a new one off loopback, else None.

    Parameters
    ----------
    host : str
        The bind address.
    token : str, optional
        A token chosen by the user (``--token``).

    Returns
    -------
    str or None
        None means no token is asked (loopback and none given).

    Raises
    ------
    ValueError
        When the given token is shorter than 8 characters.
    """
    if token is not None:
        if len(token) < 8:
            raise ValueError("an access token needs at least 8 characters")
        return token
    return None if is_loopback(host) else new_token()


def token_middleware(token: str) -> Callable[..., Awaitable[Any]]:
    """An aiohttp middleware that refuses requests without ``token`` (403).

    A request is let through when its ``token`` query parameter or its cookie holds the token; a
    request carrying it in the query gets the cookie set on its response (HttpOnly, SameSite=Strict).

    Parameters
    ----------
    token : str
        The access token.

    Returns
    -------
    callable
        The middleware, for ``aiohttp.web.Application.middlewares``.
    """
    expected = token.encode()

    def _matches(value: Optional[str]) -> bool:
        return bool(value) and hmac.compare_digest(str(value).encode(), expected)

    @web.middleware
    async def require_token(request: Any, handler: Callable[..., Awaitable[Any]]) -> Any:
        from_query = _matches(request.query.get(QUERY))
        if not (from_query or _matches(request.cookies.get(COOKIE))):
            return web.Response(status=403, content_type="text/plain",
                                text="RobustDeep Studio: access token required. Open the address "
                                     "printed when the studio started (it ends with ?token=...).\n")
        response = await handler(request)
        if from_query and hasattr(response, "set_cookie") and not getattr(response, "prepared", False):
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    return require_token


__all__ = ["COOKIE", "QUERY", "access_token", "is_loopback", "new_token", "token_middleware"]
