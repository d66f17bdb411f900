"""The version of RobustDeep, defined once.

``RobustDeepLogic.__version__`` re-exports it, ``pyproject.toml`` reads the package's version from
there, and it is written into what the engine saves (cohort manifests, resolved configurations,
training runs, evaluation results).
"""

__version__ = "0.1.0"
