"""Campaigns: the :class:`Campaign` facade (:mod:`.campaign`), its store (:mod:`.store`),
the Pareto export (:mod:`.export`) and the demo (:mod:`.demo`)."""

from .campaign import (
    AX_PARAMETERS,
    PROPOSAL_FIELDS,
    Campaign,
    CampaignError,
    CampaignSpec,
    TrialRecord,
    delete_campaign,
    list_campaigns,
)
from .store import CampaignStore, StoreError, default_store_path

__all__ = [
    "Campaign",
    "CampaignSpec",
    "CampaignError",
    "list_campaigns",
    "delete_campaign",
    "PROPOSAL_FIELDS",
    "TrialRecord",
    "AX_PARAMETERS",
    "CampaignStore",
    "StoreError",
    "default_store_path",
]
