"""Command lines: one module per script, each a ``main(argv=None) -> int``.

``scripts/X.py`` and the console entry points (``magicanimate-X``, see pyproject.toml) are thin shims over
these. Every main follows the same conventions (:mod:`.common`): a user's mistake is one ``error: ...`` line
and exit status 2, Ctrl-C and SIGTERM stop the run cleanly (exit 130 / 143, nothing half-written), and
``key=value`` overrides may appear anywhere on the command line.
"""
