"""Floors and ceilings for every results table: 'mixture as estimate' and the oracle ideal masks.

Lesson: notebooks/02_measuring_restoration.ipynb

- :func:`mixture_as_estimate` — every stem's estimate is the mixture itself: the score of doing nothing (a floor).
- :func:`ideal_ratio_mask` (IRM) and :func:`ideal_binary_mask` (IBM) — oracle masks computed from the *clean*
  stems' STFT magnitudes and applied to the mixture's STFT: the best a real-valued time-frequency mask can do when it
  knows the answer (a ceiling for mask-based separation).
- :func:`baseline_estimates` — the baselines of one mixture; :class:`msr_lib.evaluate.ScoreBoard` puts them in its
  first rows.
- :func:`oracle_rows` — master each song of a folder with :func:`msr_lib.degrade.degrade_mix`, compute the three
  baselines on the mastered mixture and score them against the clean stems with every metric asked for
  (``msr evaluate --baselines``).

**On a mastered mixture the oracle masks are not a true ceiling.** A mask only re-weights the mixture's
time-frequency bins; it cannot undo EQ, compression, saturation, reverb, limiting or codec artefacts that the
mastering chain put into those bins. On a plain sum of stems the IRM scores very high; on a degraded mix it scores
much lower even though it knows the clean stems — that gap is exactly what Music Source *Restoration* (a restorer
after the separator) is about.

**Levels.** The mastered mixture is at a different level from the clean stems (loudness normalisation, limiting).
Multi-Mel-SNR and SI-SNR are scale-invariant, so that does not matter to them; plain :func:`msr_lib.metrics.snr` is
not scale-invariant and scores every baseline on a mastered mixture low partly because of the level alone.
"""
from __future__ import annotations

import numpy as np
import torch

from msr_lib.audio import SAMPLE_RATE, check_audio
from msr_lib.errors import MSRError

#: Names of the three baselines, in the order tables show them.
BASELINES = ("mixture", "irm", "ibm")
BASELINE_TITLES = {"mixture": "Mixture as estimate", "irm": "Ideal ratio mask (oracle)",
                   "ibm": "Ideal binary mask (oracle)"}


def mixture_as_estimate(mixture: np.ndarray, stem_names, *, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Each stem's estimate is the mixture (times ``scale``). The floor of every table.

    The scale does not change Multi-Mel-SNR or SI-SNR (both scale-invariant); it changes plain SNR only.
    A natural non-trivial choice is ``1 / len(stem_names)``.
    """
    mixture = check_audio(np.asarray(mixture), "mixture")
    names = list(stem_names)
    if not names:
        raise MSRError("mixture_as_estimate needs at least one stem name")
    estimate = (mixture * np.float32(scale)).astype(np.float32)
    return {name: estimate.copy() for name in names}


def _stft(audio: np.ndarray, n_fft: int, hop: int) -> torch.Tensor:
    window = torch.hann_window(n_fft, dtype=torch.float64)
    return torch.stft(torch.from_numpy(np.asarray(audio, dtype=np.float64)), n_fft=n_fft, hop_length=hop,
                      window=window, center=True, pad_mode="constant", return_complex=True)


def _istft(spec: torch.Tensor, n_fft: int, hop: int, length: int) -> np.ndarray:
    window = torch.hann_window(n_fft, dtype=torch.float64)
    audio = torch.istft(spec, n_fft=n_fft, hop_length=hop, window=window, center=True, length=length)
    return audio.numpy().astype(np.float32)


def _prepare(mixture, clean_stems: dict, n_fft: int, hop: int):
    mixture = check_audio(np.asarray(mixture), "mixture")
    if not isinstance(clean_stems, dict) or not clean_stems:
        raise MSRError("oracle masks need a non-empty dict of clean stems {name: (channels, samples) array}")
    if n_fft <= 0 or hop <= 0 or hop > n_fft:
        raise MSRError(f"need 0 < hop <= n_fft, got n_fft={n_fft}, hop={hop}")
    channels, length = mixture.shape
    stems = {}
    for name, audio in clean_stems.items():
        audio = check_audio(np.asarray(audio), f"clean stem {name!r}")
        if audio.shape[0] != channels:
            if audio.shape[0] == 1:
                audio = np.repeat(audio, channels, axis=0)
            else:
                raise MSRError(f"clean stem {name!r} has {audio.shape[0]} channels, the mixture {channels}")
        # the clean stems may differ in length from the mixture by a few samples: pad/trim to the mixture
        if audio.shape[1] < length:
            audio = np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
        stems[name] = audio[:, :length]
    if length < 2:
        raise MSRError("the mixture is too short for an STFT")
    if length < n_fft:  # a very short signal gets a shorter frame, same overlap
        short = max(4, 2 ** int(np.floor(np.log2(length))))
        hop, n_fft = max(1, hop * short // n_fft), short
    return mixture, stems, n_fft, hop


def _apply_masks(mixture: np.ndarray, masks: dict[str, torch.Tensor], mix_spec: torch.Tensor, n_fft: int,
                 hop: int) -> dict[str, np.ndarray]:
    length = mixture.shape[1]
    return {name: _istft(mask * mix_spec, n_fft, hop, length) for name, mask in masks.items()}


def ideal_ratio_mask(mixture, clean_stems: dict[str, np.ndarray], *, n_fft: int = 2048, hop: int = 512,
                     power: float = 1.0) -> dict[str, np.ndarray]:
    """Oracle IRM: mask_j = |S_j|^p / Σ_k |S_k|^p from the clean stems' STFTs, applied to the mixture's STFT.

    ``power`` 1 (magnitude ratio) or 2 (Wiener-like power ratio). Bins where every clean stem is silent share the
    mixture equally (mask 1/N), so the masks of all stems always sum to 1 and the estimates sum to the mixture.
    Returns ``{stem: (channels, samples)}`` float32 at the mixture's length (Hann window, centred frames).
    """
    mixture, stems, n_fft, hop = _prepare(mixture, clean_stems, n_fft, hop)
    if power <= 0:
        raise MSRError(f"mask power must be positive, got {power}")
    mags = {name: _stft(audio, n_fft, hop).abs() ** power for name, audio in stems.items()}
    total = torch.stack(list(mags.values())).sum(0)
    silent = total <= 1e-20
    share = 1.0 / len(mags)
    masks = {name: torch.where(silent, torch.full_like(mag, share), mag / total.clamp_min(1e-20))
             for name, mag in mags.items()}
    return _apply_masks(mixture, masks, _stft(mixture, n_fft, hop), n_fft, hop)


def ideal_binary_mask(mixture, clean_stems: dict[str, np.ndarray], *, n_fft: int = 2048,
                      hop: int = 512) -> dict[str, np.ndarray]:
    """Oracle IBM (winner takes all): each time-frequency bin of the mixture goes wholly to the clean stem with the
    largest magnitude there (ties and all-silent bins → the first stem in dict order), so the masks are 0/1 and sum
    to 1. Same STFT and output as :func:`ideal_ratio_mask`."""
    mixture, stems, n_fft, hop = _prepare(mixture, clean_stems, n_fft, hop)
    mags = torch.stack([_stft(audio, n_fft, hop).abs() for audio in stems.values()])
    winner = mags.argmax(0)
    masks = {name: (winner == i).to(torch.float64) for i, name in enumerate(stems)}
    return _apply_masks(mixture, masks, _stft(mixture, n_fft, hop), n_fft, hop)


def baseline_estimates(mixture, clean_stems: dict[str, np.ndarray], *, names=BASELINES, n_fft: int = 2048,
                       hop: int = 512) -> dict[str, dict[str, np.ndarray]]:
    """The baselines ``names`` (some of :data:`BASELINES`, in that order) for one mixture:
    ``{"mixture": …, "irm": …, "ibm": …}`` (IRM with power 1)."""
    unknown = [name for name in names if name not in BASELINES]
    if unknown:
        raise MSRError(f"unknown baseline {unknown[0]!r}; expected some of {', '.join(BASELINES)}")
    build = {
        "mixture": lambda: mixture_as_estimate(mixture, clean_stems),
        "irm": lambda: ideal_ratio_mask(mixture, clean_stems, n_fft=n_fft, hop=hop, power=1.0),
        "ibm": lambda: ideal_binary_mask(mixture, clean_stems, n_fft=n_fft, hop=hop),
    }
    return {name: build[name]() for name in BASELINES if name in names}


def oracle_rows(song_dirs, *, seed: int = 0, metrics=("multi_mel_snr", "si_snr"), degrade: bool = True,
                codec: bool = True, sample_rate: int = SAMPLE_RATE, progress: bool | None = False):
    """Score the three baselines on a set of songs: ``{"mixture": EvaluationResult, "irm": …, "ibm": …}``.

    ``song_dirs`` is a list of ``msr synth`` song folders or one folder holding them
    (:func:`msr_lib.evaluate.song_folders`). Each song's clean stems are mastered by
    :func:`msr_lib.evaluate.song_mixture` (seed :func:`msr_lib.data.synth.song_seed` ``(seed, i)``, recorded per song
    in ``result.info["seeds"]``); with ``degrade=False`` the mixture is the plain sum of the stems. The baselines are
    computed on that mixture and scored against the clean stems (scale-invariant metrics ignore the mastered level;
    plain SNR does not — see the module docstring).
    """
    from tqdm.auto import tqdm

    from msr_lib.audio import load_song_stems
    from msr_lib.data.synth import song_seed
    from msr_lib.evaluate import Scorer, resolve_metrics, song_folders, song_mixture

    metric_list = resolve_metrics(metrics)
    dirs = song_folders(song_dirs)
    scorers = {name: Scorer(metric_list) for name in BASELINES}
    seeds = {}
    disable = None if progress is None else not progress  # None: a bar only on a terminal
    for i, song_dir in enumerate(tqdm(dirs, desc="oracle baselines", unit="song", disable=disable)):
        stems = load_song_stems(song_dir, sample_rate)
        if degrade:
            seeds[song_dir.name] = song_seed(seed, i)
        mixture = song_mixture(stems, mix="mastered" if degrade else "clean", seed=seeds.get(song_dir.name),
                               sample_rate=sample_rate, codec=codec)
        for name, estimates in baseline_estimates(mixture, stems).items():
            scorers[name].add_song(song_dir.name, estimates, stems, sample_rate)
    info = {"songs": len(dirs), "seed": int(seed), "degrade": bool(degrade), "codec": bool(codec and degrade),
            "seeds": seeds}
    return {name: scorer.result(info={**info, "baseline": name, "title": BASELINE_TITLES[name]})
            for name, scorer in scorers.items()}
