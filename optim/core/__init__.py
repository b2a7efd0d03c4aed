"""The optimization core: the candidate set (:mod:`.problem`), the loss model and acquisition
over it (:mod:`.acquisition`) and the proposal strategies behind one interface
(:mod:`.strategies`). Pure computation: no storage, no Ax, no I/O."""

from .problem import CampaignSpec, Problem, ProblemError
from .strategies import STRATEGIES, ProposalBatch

__all__ = ["CampaignSpec", "Problem", "ProblemError", "STRATEGIES", "ProposalBatch"]
