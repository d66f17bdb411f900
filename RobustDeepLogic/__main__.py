"""``python -m RobustDeepLogic``: the ``robustdeep`` command line, for an environment without the script.

Runs :func:`RobustDeepLogic.cli.main.main` and exits with its status (0, 1, or 2 for an input error).
"""

import sys

from RobustDeepLogic.cli.main import main

sys.exit(main())
