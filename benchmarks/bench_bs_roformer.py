"""BS-RoFormer speed: ours (``msr_lib.models.BSRoformer``) against lucidrains' ``bs-roformer`` at a matched size.

The peer is an optional extra (``pip install -e .[bench]``); without it, ours is timed alone.

Both models get the same dim, depth, time/band transformer depths, heads, dim_head, stereo, stems, the 62 MSST bands,
n_fft 2048, hop 441, zero-DC, mask-estimator depth and MLP expansion. The peer's extras are switched off where it has
a switch: ``num_residual_streams=1`` (plain residuals instead of hyper-connections); its multi-resolution STFT loss is
not used (both models get the same plain waveform L1). The peer has no ``mlp_expansion_factor`` argument (its mask
estimators always use 4), so we construct it with its ``MaskEstimator`` bound to our factor. Left on in the peer, as it
has no switch: learned value-residual mixing in every attention layer after the first depth step (a ``Linear(dim,
heads)`` each, the parameter-count difference printed below).

Measured in one process, interleaved, median of ``--repeats`` after warm-up, default torch threads:
(a) a training step (forward, L1 against a random target, backward, AdamW step) on 2 × 3 s of stereo 44.1 kHz,
(b) inference (``torch.inference_mode``) on 1 × 10 s.
A script, not a test:
    .venv/bin/python benchmarks/bench_bs_roformer.py [--repeats 7] [--quick] [--config small|large|both]
        [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import time
import warnings

import torch

from msr_lib.audio import SAMPLE_RATE
from msr_lib.models import BSRoformer
from msr_lib.models.bs_roformer import MSST_44K_BANDS

warnings.filterwarnings("ignore", message=".*(rectangular window|sdp_kernel).*")  # the peer's, harmless

#: dim 64, depth 2, 4 × 32 heads (6.8 M parameters: the laptop preset's size until 2026-12; the README's rows)
SMALL = dict(dim=64, depth=2, heads=4, dim_head=32, time_transformer_depth=1, freq_transformer_depth=1,
              mask_estimator_depth=2, mlp_expansion_factor=2, num_stems=4)
LARGE = {**SMALL, "dim": 128, "depth": 4, "heads": 8, "dim_head": 16}


def build_ours(cfg: dict) -> BSRoformer:
    return BSRoformer(**cfg, stereo=True, freqs_per_bands=MSST_44K_BANDS, stft_hop_length=441, zero_dc=True)


def build_peer(cfg: dict):
    import bs_roformer.bs_roformer as peer_module

    cfg = dict(cfg)
    expansion = cfg.pop("mlp_expansion_factor")
    original = peer_module.MaskEstimator
    peer_module.MaskEstimator = functools.partial(original, mlp_expansion_factor=expansion)  # no kwarg for it
    try:
        return peer_module.BSRoformer(
            **cfg, stereo=True, freqs_per_bands=tuple(MSST_44K_BANDS), stft_hop_length=441, zero_dc=True,
            num_residual_streams=1, flash_attn=True,
        )
    finally:
        peer_module.MaskEstimator = original


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_train_step(model, batch: int, seconds: float, device: str):
    gen = torch.Generator().manual_seed(0)
    x = (0.1 * torch.randn(batch, 2, int(seconds * SAMPLE_RATE), generator=gen)).to(device)
    target = (0.1 * torch.randn(batch, model.num_stems, 2, x.shape[-1], generator=gen)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        out = model(x)  # (b, n, c, s') — the peer's iSTFT may drop a few samples at the end
        loss = (out - target[..., : out.shape[-1]]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def make_infer_step(model, seconds: float, device: str):
    x = (0.1 * torch.randn(1, 2, int(seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(1))).to(device)
    model.eval()

    def step():
        with torch.inference_mode():
            model(x)

    return step


def timed(fn, device: str) -> float:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start)


def compare(steps: dict, repeats: int, warmup: int, device: str) -> dict[str, float]:
    """Interleaved timing (one call of each per round); median ms per step."""
    for _ in range(warmup):
        for fn in steps.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            times[name].append(timed(fn, device))
    return {name: statistics.median(t) for name, t in times.items()}


def run(name: str, cfg: dict, args, with_peer: bool) -> None:
    torch.manual_seed(0)
    models = {"ours": build_ours(cfg)} | ({"peer": build_peer(cfg)} if with_peer else {})
    models = {k: m.to(args.device) for k, m in models.items()}
    print(f"\n== {name}: {cfg}")
    ours = n_params(models["ours"])
    if with_peer:
        peer = n_params(models["peer"])
        mixes = (cfg["depth"] - 1) * (cfg["time_transformer_depth"] + cfg["freq_transformer_depth"])
        print(f"trainable parameters: ours {ours:,}, peer {peer:,}; peer − ours = {peer - ours:,};"
              f" the peer's value-residual mixes, {mixes} × Linear({cfg['dim']}, {cfg['heads']}):"
              f" {mixes * (cfg['dim'] + 1) * cfg['heads']:,}")
    else:
        print(f"trainable parameters: ours {ours:,}")
    train_s, infer_s = (1.0, 2.0) if args.quick else (3.0, 10.0)
    tasks = {
        f"train step (2 × {train_s:g} s)": {k: make_train_step(m, 2, train_s, args.device) for k, m in models.items()},
        f"inference (1 × {infer_s:g} s)": {k: make_infer_step(m, infer_s, args.device) for k, m in models.items()},
    }
    for task, steps in tasks.items():
        ms = compare(steps, args.repeats, args.warmup, args.device)
        print(f"{task}: ours {ms['ours']:.1f} ms"
              + (f", peer {ms['peer']:.1f} ms → ours/peer {ms['ours'] / ms['peer']:.2f}" if with_peer else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 s / 2 s clips, 3 repeats: a smoke run")
    parser.add_argument("--config", choices=("small", "large", "both"), default="small",
                        help="a small model (dim 64, depth 2, 4 heads × 32), a larger one (dim 128, depth 4, 8 heads × 16), or both")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.warmup = min(args.repeats, 3), 1
    with_peer = importlib.util.find_spec("bs_roformer") is not None
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}"
          + ("" if with_peer else "; peer not installed (pip install -e .[bench]): ours alone"))
    if args.config in ("small", "both"):
        run("small", SMALL, args, with_peer)
    if args.config in ("large", "both"):
        run("larger", LARGE, args, with_peer)


if __name__ == "__main__":
    main()
