"""``robustdeep studio [WORKSPACE]``: RobustDeep Studio, the module's panels in a browser.

Serves the studio (the package ``RobustDeepStudio``, installed with the optional extra
``robustdeep[studio]``) at ``http://HOST:PORT/`` until stopped. Binds to 127.0.0.1 by default; on any
other address an access token is required (``--token``, or a new one printed in the address). The
engine never imports the studio: this command looks it up at run time and, when the extra is missing,
exits with status 2 and says how to install it. docs/studio.md has the panels.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict

from RobustDeepLogic.cli.frame import Command, Options, Result, RunContext

#: What to run when the studio's packages are missing.
INSTALL_HINT = ("pip install 'robustdeep[studio]' (Python 3.10 or newer), or run scripts/studio.sh "
                "from a clone, which sets it up and opens the demo study")


def _arguments(o: Options) -> None:
    o.positional("workspace", nargs="?", help="the folder the studio may read and write: a study "
                 "(robustdeep demo / reproduce), a cohort, or a folder holding several (default: .)")
    o.option("--host", default="127.0.0.1", help="address to bind to; any address but loopback "
             "requires an access token")
    o.option("--port", type=int, default=8080, help="port (0: any free port; the address is printed)")
    o.option("--token", default=None, help="access token (at least 8 characters); default: none on "
             "loopback, a new random one on other addresses")
    o.option("--project", default=None, help="study or cohort folder to open first, relative to the "
             "workspace")
    o.option("--idle-exit", type=int, default=0, help="stop after this many seconds with no page "
             "open (0: never)")


def _run(config: Dict[str, Any], ctx: RunContext) -> Result:
    from RobustDeepLogic.core.errors import InputError

    try:
        server = importlib.import_module("RobustDeepStudio.server")
    except ImportError as exc:
        raise InputError(f"RobustDeep Studio is not installed here ({exc})", hint=INSTALL_HINT) from None
    try:
        code = server.serve(config.get("workspace") or ".", host=config["host"], port=int(config["port"]),
                            token=config.get("token"), project=config.get("project"),
                            idle_exit=int(config["idle_exit"]))
    except InputError:
        raise
    except ValueError as exc:  # a bad token
        raise InputError(str(exc), hint="choose a token of at least 8 characters") from None
    return Result(figures={"exit": code}, summary="RobustDeep Studio stopped")


COMMAND = Command(
    "studio",
    "RobustDeep Studio: the panels in a browser (optional extra robustdeep[studio])",
    _arguments,
    _run,
)
