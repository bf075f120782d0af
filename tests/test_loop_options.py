"""Training-loop options for throughput (TrainConfig.amp_cpu): they train, and resume stays exact."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from msr_lib.data.datasets import MultitrackDataset, SongEntry
from msr_lib.models import BSRoformer
from msr_lib.presets import get_preset
from msr_lib.train import loop
from msr_lib.train.curriculum import separation_batch_loss
from msr_lib.train.loop import TrainConfig, read_log, train

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


def test_amp_cpu_runs_the_model_in_bf16_and_trains(songs, tmp_path, monkeypatch):
    dtypes = []
    original = BSRoformer.forward

    def recording_forward(self, audio):
        handle = self.band_split.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
        try:
            return original(self, audio)
        finally:
            handle.remove()

    monkeypatch.setattr(BSRoformer, "forward", recording_forward)
    fp32_model, fp32 = run(songs, tmp_path / "fp32")
    assert set(dtypes) == {torch.float32}
    dtypes.clear()
    bf16_model, bf16 = run(songs, tmp_path / "bf16", amp_cpu=True)
    assert set(dtypes) == {torch.bfloat16}  # the autocast reached the model's layers
    assert sorted(bf16) == [1, 2, 3] and all(np.isfinite(list(bf16.values())))
    # same weights and batch at step 1: the bf16 loss is the float32 loss within a few per cent
    assert bf16[1] == pytest.approx(fp32[1], rel=0.03)
    start = tiny_model().state_dict()
    trained = bf16_model.state_dict()
    assert all(trained[k].dtype == torch.float32 for k in trained)  # the weights stay float32
    moved = [k for k in start if start[k].is_floating_point() and not torch.equal(start[k], trained[k])]
    assert len(moved) > len(start) // 2


def test_amp_cpu_resume_is_exact(songs, tmp_path, monkeypatch):
    _, whole = run(songs, tmp_path / "whole", steps=4, amp_cpu=True)
    append = loop._append_log

    def interrupt_after_step_2(out_dir, row):
        append(out_dir, row)
        if row["step"] == 2 and "loss" in row:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "_append_log", interrupt_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        run(songs, tmp_path / "parts", steps=4, amp_cpu=True)
    monkeypatch.setattr(loop, "_append_log", append)
    _, parts = run(songs, tmp_path / "parts", steps=4, amp_cpu=True, resume=True)
    assert sorted(parts) == [1, 2, 3, 4]
    assert parts == whole  # exactly equal
