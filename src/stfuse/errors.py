"""The project's input-error type and the helpers that report it, shared by ``stfuse.cli`` and
``stfuse.lightning_cli`` (which would otherwise import each other). Imports nothing heavy."""

from __future__ import annotations

__all__ = ["UsageError", "error_chain"]


class UsageError(Exception):
    """A bad input, named by its file or config key, with the fix; printed as one line, exit status 2."""


def error_chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and the exceptions behind it (``__cause__``, else ``__context__``), outermost first."""
    seen: list[BaseException] = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return seen
