"""``python -m RobustDeepLogic.cli`` (as ``torchrun -m RobustDeepLogic.cli train ...`` runs it): the command line."""

import sys

from RobustDeepLogic.cli.main import main

sys.exit(main())
