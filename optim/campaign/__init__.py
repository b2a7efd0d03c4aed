"""Campaigns: the :class:`Campaign` facade (:mod:`.campaign`), its stores (:func:`open_store`
names one: a SQLite :class:`CampaignStore`, :mod:`.store`, or a team :class:`SqlStore`,
:mod:`.sql_store`, both :class:`Store`), the Pareto export (:mod:`.export`) and the demo
(:mod:`.demo`)."""

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
from .sql_store import SqlStore
from .storage import Store, open_store
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
    "SqlStore",
    "Store",
    "open_store",
    "StoreError",
    "default_store_path",
]
