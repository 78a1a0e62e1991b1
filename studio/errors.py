"""Errors that carry a message meant for the user, and how any exception becomes one."""

from __future__ import annotations


class UserError(Exception):
    """Bad input or a condition the user can fix: shown as-is, without a traceback.

    Raise it for an empty folder, a corrupt file, a wrong format, a missing option: the message
    should say what happened and, when possible, what to do.
    """


class Cancelled(Exception):
    """Raised inside a job by ``ctx.check()`` once the user pressed Cancel."""


def friendly(exc: BaseException) -> str:
    """One readable line for any exception (the traceback goes to the log, not here)."""
    name = type(exc).__name__
    text = str(exc).strip()
    if isinstance(exc, UserError):
        return text or name
    if name in ("OutOfMemoryError",) or (isinstance(exc, RuntimeError) and "out of memory" in text):
        first_line = text.splitlines()[0][:200] if text else ""
        return ("Out of memory on the compute device. Try a smaller batch size, image size or "
                f"model preset, or close other programs using the GPU. ({first_line})")
    if isinstance(exc, MemoryError):
        return "Out of memory. Try a smaller batch size, image size or model preset."
    if isinstance(exc, FileNotFoundError):
        return f"File not found: {exc.filename or text}"
    if isinstance(exc, PermissionError):
        return f"Permission denied: {exc.filename or text}"
    if isinstance(exc, OSError) and getattr(exc, "errno", None) == 28:
        return "The disk is full: free some space in the workspace folder and try again."
    first = text.splitlines()[0] if text else ""
    return f"{name}: {first}" if first else name
