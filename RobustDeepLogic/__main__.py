"""TODO docstring (RobustDeepLogic.__main__)."""

import sys

from RobustDeepLogic.cli.main import main

sys.exit(main())
