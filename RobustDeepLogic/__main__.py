"""``python -m RobustDeepLogic``: the ``robustdeep`` command line, for an environment without the script."""

import sys

from RobustDeepLogic.cli.main import main

sys.exit(main())
