"""Whether pip's package index can be reached: the self-test skips the steps that download (the
engine's dependencies, the template assets) when it cannot.

Free of Qt and of Slicer: tested with plain pytest.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from typing import Dict, Optional

#: The package index asked when pip has none configured in the environment.
DEFAULT_INDEX_URL = "https://pypi.org/simple"


def package_index_url(environ: Optional[Dict[str, str]] = None) -> str:
    """The package index pip would ask first: ``PIP_INDEX_URL``, else :data:`DEFAULT_INDEX_URL`.

    Parameters
    ----------
    environ : dict of str to str, optional
        The environment (default: this process's).

    Returns
    -------
    str
        The index URL.
    """
    env = os.environ if environ is None else environ
    return env.get("PIP_INDEX_URL") or DEFAULT_INDEX_URL


def package_index_reachable(url: Optional[str] = None, timeout: float = 3.0) -> bool:
    """True when the package index answers a connection within ``timeout`` seconds (the self-test
    skips the steps that download when it does not).

    Parameters
    ----------
    url : str, optional
        The index URL (default: :func:`package_index_url`); ``file://`` URLs are checked on disk.
    timeout : float, optional
        Seconds to wait for the connection.

    Returns
    -------
    bool
        Whether a TCP connection to the index's host and port succeeds (or the local folder exists).
    """
    parsed = urllib.parse.urlparse(url or package_index_url())
    if parsed.scheme == "file":
        return os.path.isdir(urllib.request.url2pathname(parsed.path))
    if not parsed.hostname:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


__all__ = ["DEFAULT_INDEX_URL", "package_index_reachable", "package_index_url"]
