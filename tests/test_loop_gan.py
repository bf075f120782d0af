"""The training loop's GAN step (a discriminator trained beside the model) and its guard against non-finite steps."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from msr_lib.errors import MSRError
from msr_lib.train.loop import TrainConfig, read_log, train
from tests.helpers import interrupt_after_step


class Pairs(torch.utils.data.Dataset):
    """Items {input, target}: noise and the same noise smoothed (a fixed function of the index)."""

    def __len__(self):
        return 64

    def __getitem__(self, index):
        x = torch.randn(1, 256, generator=torch.Generator().manual_seed(index))
        return {"input": x, "target": torch.nn.functional.avg_pool1d(x, 5, 1, 2)}


def networks():
    torch.manual_seed(0)
    generator = nn.Conv1d(1, 1, 9, padding=4)
    critic = nn.Sequential(nn.Conv1d(1, 4, 9, stride=4), nn.LeakyReLU(0.1), nn.Conv1d(4, 1, 3))
    return generator, critic


def generator_loss(model, batch, discriminator):
    fake = model(batch["input"])
    reconstruction = (fake - batch["target"]).abs().mean()
    if discriminator is None:
        return reconstruction, {"reconstruction": reconstruction.item()}
    adversarial = (discriminator(fake) - 1).square().mean()
    return reconstruction + 0.1 * adversarial, {"reconstruction": reconstruction.item(), "adv": adversarial.item()}


def critic_loss(discriminator, model, batch):
    with torch.no_grad():
        fake = model(batch["input"])
    loss = (discriminator(batch["target"]) - 1).square().mean() + discriminator(fake).square().mean()
    return loss, {"real": discriminator(batch["target"]).mean().item()}


def run(out_dir, *, steps=6, resume=False, loss_fn=generator_loss, **options):
    generator, critic = networks()
    config = TrainConfig(**{"steps": steps, "batch_size": 4, "lr": 1e-2, "warmup_steps": 1, "ema_decay": None,
                            "checkpoint_every": 2, "adversarial_from": 3, **options})
    train(generator, Pairs(), config=config, out_dir=out_dir, loss_fn=loss_fn, device="cpu", progress=False,
          save_model=lambda m, folder: torch.save(m.state_dict(), folder / "weights.pt"), resume=resume,
          discriminator=critic, discriminator_loss_fn=critic_loss)
    return generator, critic, read_log(out_dir)


def test_the_discriminator_trains_from_adversarial_from_and_resume_is_exact(tmp_path, monkeypatch):
    start = [p.clone() for p in networks()[1].parameters()]
    generator, critic, rows = run(tmp_path / "whole")
    assert [("d_loss" in r, "adv" in r) for r in rows] == [(False, False)] * 3 + [(True, True)] * 3
    assert all(r["d_loss"] > 0 for r in rows[3:]) and all(r["reconstruction"] > 0 for r in rows)
    assert any(not torch.equal(a, b) for a, b in zip(start, critic.parameters()))   # it trained

    interrupt_after_step(monkeypatch, 4, lambda: run(tmp_path / "parts"))
    resumed_generator, resumed_critic, resumed_rows = run(tmp_path / "parts", resume=True)
    assert [r["loss"] for r in resumed_rows] == [r["loss"] for r in rows]
    for a, b in zip([*generator.parameters(), *critic.parameters()],
                    [*resumed_generator.parameters(), *resumed_critic.parameters()]):
        assert torch.equal(a, b)


def test_a_critic_that_never_starts_leaves_a_reconstruction_only_run(tmp_path):
    start = [p.clone() for p in networks()[1].parameters()]
    _, critic, rows = run(tmp_path / "run", adversarial_from=None)
    assert all("d_loss" not in r and "adv" not in r for r in rows)
    assert all(torch.equal(a, b) for a, b in zip(start, critic.parameters()))


def test_non_finite_steps_are_skipped_and_counted_then_stop_the_run(tmp_path):
    def poisoned(model, batch, discriminator):
        loss, parts = generator_loss(model, batch, discriminator)
        return (loss * float("nan") if poisoned.calls in (2,) else loss), parts

    def counting(model, batch, discriminator):
        poisoned.calls += 1
        return poisoned(model, batch, discriminator)

    poisoned.calls = 0
    generator, _, rows = run(tmp_path / "one", steps=4, adversarial_from=None, loss_fn=counting)
    assert [r.get("skipped", 0) for r in rows] == [0, 1, 0, 0]
    assert all(torch.isfinite(p).all() for p in generator.parameters())

    def always_nan(model, batch, discriminator):
        loss, parts = generator_loss(model, batch, discriminator)
        return loss * float("nan"), parts

    with pytest.raises(MSRError, match="3 steps had a non-finite loss or gradient .*lower the learning rate"):
        run(tmp_path / "nan", steps=6, adversarial_from=None, loss_fn=always_nan, max_skipped_steps=2)


def test_a_discriminator_without_its_loss_is_refused(tmp_path):
    generator, critic = networks()
    with pytest.raises(MSRError, match="needs a discriminator_loss_fn"):
        train(generator, Pairs(), config=TrainConfig(steps=1), out_dir=tmp_path, loss_fn=generator_loss,
              save_model=lambda m, f: None, discriminator=critic, device="cpu", progress=False)
