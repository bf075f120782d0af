"""Baselines: mixture as estimate, oracle ideal ratio / binary masks, and oracle_rows over song folders."""
import numpy as np
import pytest
import soundfile as sf

from msr_lib.audio import load_song_stems
from msr_lib.baselines import (
    BASELINES, baseline_estimates, ideal_binary_mask, ideal_ratio_mask, mixture_as_estimate, oracle_rows,
)
from msr_lib.data.synth import song_seed
from msr_lib.degrade import degrade_mix
from msr_lib.errors import MSRError
from msr_lib.metrics import multi_mel_snr, si_snr

SR = 44100


def two_stems(seconds=1.0, seed=0):
    """A low harmonic tone ('bass') and high-passed noise bursts ('drums'): overlapping in time, apart in frequency."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    bass = sum(0.3 / k * np.sin(2 * np.pi * 110 * k * t + k) for k in range(1, 5))
    noise = np.diff(rng.standard_normal(n + 1))                      # first difference: a high-tilted noise
    envelope = (np.sin(2 * np.pi * 4 * t) > 0).astype(float)
    drums = 0.1 * noise * envelope
    to2 = lambda x: np.stack([x, 0.8 * x]).astype(np.float32)  # noqa: E731
    return {"bass": to2(bass), "drums": to2(drums)}


def score(estimates, references):
    return {name: (si_snr(estimates[name], references[name]),
                   multi_mel_snr(estimates[name], references[name], SR)) for name in references}


def test_mixture_as_estimate_copies_the_mixture():
    mix = np.ones((2, 100), np.float32)
    out = mixture_as_estimate(mix, ["vocals", "bass"], scale=0.5)
    assert set(out) == {"vocals", "bass"}
    assert np.allclose(out["vocals"], 0.5) and out["bass"].shape == (2, 100) and out["bass"].dtype == np.float32
    out["vocals"][:] = 3
    assert np.allclose(out["bass"], 0.5)                               # independent copies
    with pytest.raises(MSRError):
        mixture_as_estimate(mix, [])


def test_oracle_masks_on_a_plain_sum_beat_the_mixture_by_far():
    stems = two_stems()
    mix = stems["bass"] + stems["drums"]
    floor = score(mixture_as_estimate(mix, stems), stems)
    irm = score(ideal_ratio_mask(mix, stems), stems)
    ibm = score(ideal_binary_mask(mix, stems), stems)
    for name in stems:
        assert irm[name][0] > floor[name][0] + 15 and irm[name][1] > floor[name][1] + 15
        assert ibm[name][0] > floor[name][0] + 10 and ibm[name][1] > floor[name][1] + 10
        assert abs(ibm[name][0] - irm[name][0]) < 10                  # binary is near the ratio mask here


def test_irm_power1_masks_sum_to_one_and_shapes_are_kept():
    stems = two_stems(seconds=0.5)
    mix = stems["bass"] + stems["drums"]
    for power in (1.0, 2.0):
        est = ideal_ratio_mask(mix, stems, power=power)
        assert set(est) == set(stems)
        for audio in est.values():
            assert audio.shape == mix.shape and audio.dtype == np.float32
        # masks sum to 1 per bin → the estimates sum back to the mixture (up to iSTFT round-off)
        assert np.max(np.abs(est["bass"] + est["drums"] - mix)) < 1e-4
    ibm = ideal_binary_mask(mix, stems)
    assert np.max(np.abs(ibm["bass"] + ibm["drums"] - mix)) < 1e-4


def test_masks_keep_an_odd_length_and_pad_short_clean_stems():
    stems = {name: a[:, :12345] for name, a in two_stems(seconds=0.5).items()}
    mix = stems["bass"] + stems["drums"]
    short = {name: a[:, :12000] for name, a in stems.items()}           # clean stems a little shorter than the mix
    for fn in (ideal_ratio_mask, ideal_binary_mask):
        out = fn(mix, short)
        assert all(a.shape == (2, 12345) for a in out.values())
    tiny = ideal_ratio_mask(mix[:, :300], {k: v[:, :300] for k, v in stems.items()})   # shorter than one frame
    assert tiny["bass"].shape == (2, 300)


def test_masks_reject_bad_input():
    mix = np.zeros((2, 1000), np.float32)
    with pytest.raises(MSRError):
        ideal_ratio_mask(mix, {})
    with pytest.raises(MSRError):
        ideal_ratio_mask(mix, {"bass": np.full((2, 1000), np.nan, np.float32)})
    with pytest.raises(MSRError):
        ideal_ratio_mask(mix, {"bass": mix}, power=0)
    with pytest.raises(MSRError):
        ideal_binary_mask(mix, {"bass": np.zeros((3, 1000), np.float32)})


def test_on_a_degraded_mix_the_irm_still_beats_the_mixture_but_is_no_ceiling():
    stems = two_stems(seconds=1.5, seed=3)
    plain = stems["bass"] + stems["drums"]
    mastered = degrade_mix(stems, SR, seed=7).mastered_mix
    floor = score(mixture_as_estimate(mastered, stems), stems)
    irm = score(ideal_ratio_mask(mastered, stems), stems)
    irm_plain = score(ideal_ratio_mask(plain, stems), stems)
    for name in stems:
        assert irm[name][1] > floor[name][1]                          # measured: the oracle mask still helps …
        assert irm[name][1] < irm_plain[name][1]                      # … but cannot undo the mastering


def test_song_seed_is_reproducible_and_differs_per_song():
    assert song_seed(0, 1) == song_seed(0, 1)
    assert len({song_seed(0, i) for i in range(5)} | {song_seed(1, 0)}) == 6


def test_baseline_estimates_builds_the_names_asked_for_in_table_order():
    stems = two_stems(seconds=0.5)
    mix = stems["bass"] + stems["drums"]
    every = baseline_estimates(mix, stems)
    assert list(every) == list(BASELINES)
    some = baseline_estimates(mix, stems, names=("irm", "mixture"))
    assert list(some) == ["mixture", "irm"]
    for name in some:
        assert all(np.array_equal(some[name][s], every[name][s]) for s in stems)
    with pytest.raises(MSRError, match="unknown baseline"):
        baseline_estimates(mix, stems, names=("mixture", "wiener"))


def write_song(folder, stems):
    folder.mkdir(parents=True)
    for name, audio in stems.items():
        sf.write(folder / f"{name}.flac", audio.T, SR, subtype="PCM_24")
    sf.write(folder / "clean_mix.flac", sum(stems.values()).T, SR, subtype="PCM_24")


def test_oracle_rows_over_song_folders(tmp_path):
    write_song(tmp_path / "songs" / "a", two_stems(seconds=1.0, seed=1))
    write_song(tmp_path / "songs" / "b", two_stems(seconds=1.0, seed=2))
    rows = oracle_rows(tmp_path / "songs", seed=3, metrics=("si_snr",), codec=False)
    assert list(rows) == ["mixture", "irm", "ibm"]
    for result in rows.values():
        assert sorted(result.per_song) == ["a", "b"]
        assert result.per_stem["bass"]["si_snr"]["count"] == 2
        assert result.info["seeds"] == {"a": song_seed(3, 0), "b": song_seed(3, 1)}
    assert rows["irm"].means["si_snr"] > rows["mixture"].means["si_snr"]
    loaded = load_song_stems(tmp_path / "songs" / "b")             # the mastered mix of song b, by hand
    mastered = degrade_mix(loaded, SR, seed=song_seed(3, 1), codec=False).mastered_mix
    assert rows["mixture"].per_song["b"]["bass"]["si_snr"] == pytest.approx(si_snr(mastered, loaded["bass"]))
    plain = oracle_rows([tmp_path / "songs" / "a"], metrics=("si_snr",), degrade=False)
    assert plain["irm"].means["si_snr"] > 15
    with pytest.raises(MSRError):
        oracle_rows(tmp_path / "nowhere", metrics=("si_snr",))
    with pytest.raises(MSRError):
        oracle_rows(tmp_path / "songs", metrics=("no_such_metric",))
