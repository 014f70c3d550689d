"""Sub-commands of ``python -m calogen``; one module per command, each with ``register`` and ``run``."""
