"""Models: the BS-RoFormer separator (MSST weight compatible) and its checkpoints.

Lesson: notebooks/03_bs_roformer.ipynb
"""
from msr_lib.models.bs_roformer import BSRoformer, load_msst
from msr_lib.models.checkpoint import Separator, export_separator, load_separator, save_separator

__all__ = ["BSRoformer", "Separator", "export_separator", "load_msst", "load_separator", "save_separator"]
