"""Serve RobustDeep Studio: ``robustdeep studio [WORKSPACE] [--host 127.0.0.1] [--port 8080] [--token T]``.

Binds to loopback by default. On any other address an access token is required
(:mod:`RobustDeepStudio.security`): the one given with ``--token``, else a new one, printed in the
address. When the server is listening it prints one line, ``RobustDeep Studio: <url>``, to stdout (the
port is the real one when 0 asked for any free port). Rendering is software (EGL when there is no
display); jobs still running when the studio stops are cancelled.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any, Optional

# Before VTK makes its first render window: offscreen EGL, not X (there is no display on a server).
os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

from trame.app import get_server  # noqa: E402

from RobustDeepStudio.app import Studio  # noqa: E402
from RobustDeepStudio.security import access_token, is_loopback, token_middleware  # noqa: E402
from RobustDeepStudio.workspace import Workspace  # noqa: E402


def studio_url(host: str, port: int, token: Optional[str]) -> str:
    """The address to open: ``http://HOST:PORT/`` (``?token=T`` when one is required).

    Parameters
    ----------
    host : str
        The bind address (``0.0.0.0`` / ``::`` are shown as this machine's name).
    port : int
        The port.
    token : str, optional
        The access token.

    Returns
    -------
    str
        The URL.
    """
    shown = host
    if host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve(workspace: str, *, host: str = "127.0.0.1", port: int = 8080, token: Optional[str] = None,
          project: Optional[str] = None, idle_exit: int = 0) -> int:
    """Run the studio until it is stopped (Ctrl-C, SIGTERM, or ``idle_exit`` seconds without a page).

    Parameters
    ----------
    workspace : str
        The workspace folder.
    host : str, optional
        The bind address.
    port : int, optional
        The port (0: any free port).
    token : str, optional
        The access token (default: none on loopback, a new one elsewhere).
    project : str, optional
        The project to open first (relative to the workspace).
    idle_exit : int, optional
        Stop after this many seconds with no page connected (0: never).

    Returns
    -------
    int
        0 once the server stopped.
    """
    token = access_token(host, token)
    server = get_server(f"robustdeep-studio-{os.getpid()}", client_type="vue3")
    studio = Studio(Workspace(workspace), server=server, project=project)

    if token:
        def _bind(wslink_server: Any) -> None:
            wslink_server.app.middlewares.append(token_middleware(token))

        server.controller.on_server_bind.add(_bind)

    def _ready(**_: Any) -> None:
        note = "" if token or is_loopback(host) else " (no token: anyone who reaches this address can use it)"
        print(f"RobustDeep Studio: {studio_url(host, server.port, token)}{note}", flush=True)

    server.controller.on_server_ready.add(_ready)
    argv, sys.argv = sys.argv, sys.argv[:1]  # trame reads its own options from sys.argv: give it none
    try:
        server.start(host=host, port=port, open_browser=False, show_connection_info=False,
                     timeout=idle_exit, disable_logging=True)
    finally:
        sys.argv = argv
        studio.jobs.shutdown()
    return 0


if __name__ == "__main__":  # python -m RobustDeepStudio.server WORKSPACE [PORT]
    sys.exit(serve(sys.argv[1], port=int(sys.argv[2]) if len(sys.argv) > 2 else 8080))
