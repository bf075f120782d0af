"""Training: the loss shared by every model (:mod:`msr_lib.train.losses`)."""
from msr_lib.train.losses import (
    STFT_RESOLUTIONS,
    multi_resolution_stft_loss,
    separation_loss,
    si_snr_loss,
)

__all__ = ["STFT_RESOLUTIONS", "multi_resolution_stft_loss", "separation_loss", "si_snr_loss"]
