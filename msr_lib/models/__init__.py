"""Models: the BS-RoFormer separator (MSST weight compatible), the HiFi++ restorer, and their checkpoints.

Lessons: notebooks/03_bs_roformer.ipynb, notebooks/05_hifipp_restorer.ipynb
"""
from msr_lib.models.bs_roformer import BSRoformer, load_msst
from msr_lib.models.checkpoint import (
    Restorer, Separator, bundled_restorers, export_restorer, export_separator, load_restorer, load_separator,
    load_torch_file, model_size, save_restorer, save_restorer_adapter, save_separator,
)
from msr_lib.models.hifipp import HiFiPlusPlus

__all__ = ["BSRoformer", "HiFiPlusPlus", "Restorer", "Separator", "bundled_restorers", "export_restorer",
           "export_separator", "load_msst", "load_restorer", "load_separator", "load_torch_file", "model_size",
           "save_restorer", "save_restorer_adapter", "save_separator"]
