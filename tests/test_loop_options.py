"""Training-loop options for throughput (TrainConfig.micro_batch_size): the same steps, and resume stays exact."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from msr_lib.data.datasets import MultitrackDataset, SongEntry
from msr_lib.errors import MSRError
from msr_lib.models import BSRoformer
from msr_lib.presets import get_preset
from msr_lib.train.curriculum import separation_batch_loss
from msr_lib.train.loop import TrainConfig, read_log, train
from tests.helpers import interrupt_after_step

SR = 44100
STEMS = ("vocals", "bass")


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Two songs of two stems: a pitched tone with noise, and a low tone."""
    root = tmp_path_factory.mktemp("songs")
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    entries = []
    for k, (high, low) in enumerate(((440.0, 55.0), (660.0, 82.5))):
        files = {}
        for stem, audio in (("vocals", 0.2 * np.sin(2 * np.pi * high * t) + 0.02 * rng.standard_normal(SR)),
                            ("bass", 0.3 * np.sin(2 * np.pi * low * t))):
            path = root / f"song{k}" / f"{stem}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), np.stack([audio, 0.8 * audio], axis=1).astype(np.float32), SR, subtype="FLOAT")
            files[stem] = [path]
        entries.append(SongEntry(name=f"song{k}", stems=files))
    return entries


def tiny_model() -> BSRoformer:
    torch.manual_seed(0)
    return BSRoformer(**{**get_preset("quick").model, "num_stems": len(STEMS)})


def run(songs, out_dir, *, steps=3, resume=False, **options) -> tuple[BSRoformer, dict[int, float]]:
    config = TrainConfig(steps=steps, batch_size=2, lr=1e-3, warmup_steps=1, ema_decay=None, checkpoint_every=2,
                         validate_every=100, **options)
    data = MultitrackDataset(songs, stems=STEMS, chunk_seconds=0.5, length=steps * 2, seed=0)
    model = tiny_model()
    result = train(model, data, config=config, out_dir=out_dir, device="cpu", progress=False, resume=resume,
                   loss_fn=lambda m, b: separation_batch_loss(m, b, mastered=False),
                   save_model=lambda m, folder: torch.save(m.state_dict(), folder / "weights.pt"))
    return result.model, {row["step"]: row["loss"] for row in read_log(out_dir) if "loss" in row}


def test_micro_batch_resume_is_exact(songs, tmp_path, monkeypatch):
    _, whole = run(songs, tmp_path / "whole", steps=4, micro_batch_size=1)
    interrupt_after_step(monkeypatch, 2, lambda: run(songs, tmp_path / "parts", steps=4, micro_batch_size=1))
    _, parts = run(songs, tmp_path / "parts", steps=4, micro_batch_size=1, resume=True)
    assert sorted(parts) == [1, 2, 3, 4]
    assert parts == whole  # exactly equal


def test_micro_batches_accumulate_to_the_batch_gradient(songs, tmp_path):
    """Both songs' stems play in every chunk, so each item has as many active stems and the batch loss is the mean
    of the items' losses: one item at a time gives the same steps."""
    whole_model, whole = run(songs, tmp_path / "whole")
    micro_model, micro = run(songs, tmp_path / "micro", micro_batch_size=1)
    assert sorted(micro) == [1, 2, 3]
    assert micro == pytest.approx(whole, rel=1e-4)
    assert micro[1] != micro[3]  # it trained
    norms = [{row["step"]: row["grad_norm"] for row in read_log(tmp_path / name) if "loss" in row}
             for name in ("whole", "micro")]
    assert norms[1] == pytest.approx(norms[0], rel=1e-4)  # the parts' gradients add up to the batch's, not more
    a, b = whole_model.state_dict(), micro_model.state_dict()
    weights = [k for k in a if a[k].is_floating_point()]
    difference = torch.cat([(a[k] - b[k]).flatten() for k in weights]).norm()
    assert difference < 1e-3 * torch.cat([a[k].flatten() for k in weights]).norm()
    with pytest.raises(MSRError, match="micro_batch_size must be between 1 and batch_size"):
        run(songs, tmp_path / "too_big", micro_batch_size=3)
