"""Models: the BS-RoFormer separator (MSST weight compatible) and its checkpoints."""
from msr_lib.models.bs_roformer import BSRoformer, load_msst
from msr_lib.models.checkpoint import Separator, load_separator, save_separator

__all__ = ["BSRoformer", "Separator", "load_msst", "load_separator", "save_separator"]
