"""The one exception family for bad user input; the CLI turns it into one stderr line, exit 2."""

from __future__ import annotations

__all__ = ["ArchoptError"]


class ArchoptError(ValueError):
    """Invalid input (shape, file, hardware, campaign...). The message is one line for users."""
