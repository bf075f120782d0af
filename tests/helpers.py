"""Helpers shared by several test modules."""
from __future__ import annotations

import pytest
import torch

from msr_lib.errors import MSRError
from msr_lib.models import BSRoformer
from msr_lib.models.checkpoint import save_separator
from msr_lib.train import loop


def interrupt_after_step(monkeypatch, step: int, run) -> None:
    """Call ``run()`` with the training loop interrupted (KeyboardInterrupt) right after logging ``step``."""
    append = loop._append_log

    def interrupting(out_dir, row):
        append(out_dir, row)
        if row["step"] == step and "loss" in row:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_append_log", interrupting)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(loop, "_append_log", append)


def tiny_separator_checkpoint(folder, stems):
    """A seeded, untrained 16-wide BS-RoFormer saved as a separator checkpoint in ``folder``; returns its path."""
    torch.manual_seed(0)
    model = BSRoformer(dim=16, depth=1, heads=2, dim_head=8, stereo=True, num_stems=len(stems), stft_hop_length=441,
                       time_transformer_depth=1, freq_transformer_depth=1, mask_estimator_depth=1,
                       mlp_expansion_factor=1)
    return save_separator(model, folder, stems=list(stems))


def one_line_error(call, *fragments) -> str:
    """``call()`` raises one :class:`MSRError` line (at most 400 characters) holding every fragment; returns it."""
    with pytest.raises(MSRError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) <= 400, message
    for fragment in fragments:
        assert str(fragment) in message, message
    return message
