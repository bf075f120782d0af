"""Models: the BS-RoFormer separator (MSST weight-compatible)."""
from msr_lib.models.bs_roformer import BSRoformer, load_msst

__all__ = ["BSRoformer", "load_msst"]
