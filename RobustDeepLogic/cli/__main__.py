"""``python -m RobustDeepLogic.cli``: the ``robustdeep`` command line.

``torchrun -m RobustDeepLogic.cli train ...`` runs multi-process training this way; ``python -m
RobustDeepLogic`` (:mod:`RobustDeepLogic.__main__`) is the same command line.
"""

import sys

from RobustDeepLogic.cli.main import main

sys.exit(main())
