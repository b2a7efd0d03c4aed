"""The campaign layer's errors (all :class:`models.errors.ArchoptError`: one line, exit 2)."""

from __future__ import annotations

from models.errors import ArchoptError

__all__ = ["CampaignError", "RunError"]


class CampaignError(ArchoptError):
    """Unknown campaign or trial, a repeated result, a run outside the budget..."""


class RunError(CampaignError):
    """A finished run the campaign refuses (implausible loss, outside the budget, repeated)."""
