"""The separators shipped in msr_lib/models/bundled: they load, and they separate an unseen synthetic song."""
import numpy as np
import pytest

from msr_lib.audio import group_stems, load_song_stems
from msr_lib.degrade import degrade_mix
from msr_lib.metrics import multi_mel_snr
from msr_lib.models import load_separator
from msr_lib.models.checkpoint import BUNDLED_DIR, bundled_separators
from msr_lib.separate import separate
from msr_lib.stems import FOUR_STEMS, STEMS

EXPECTED = {"4stem": FOUR_STEMS, "8stem": STEMS}


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    from msr_lib.data.synth import synthesize_songs

    folder = synthesize_songs(tmp_path_factory.mktemp("song"), songs=1, seconds=8.0, seed=3000, progress=False,
                              workers=1)[0]
    return load_song_stems(folder)


def test_both_bundles_are_shipped_and_small():
    assert set(EXPECTED) <= set(bundled_separators())
    total = sum(p.stat().st_size for p in BUNDLED_DIR.rglob("*") if p.is_file())
    assert total <= 30e6


def test_default_separator_is_the_8stem_bundle():
    assert load_separator().stems == STEMS


@pytest.mark.parametrize("name", list(EXPECTED))
def test_bundle_separates_an_unseen_song_better_than_the_mixture(name, song):
    separator = load_separator(f"bundled:{name}")
    assert separator.stems == EXPECTED[name] and separator.sample_rate == 44100
    references = group_stems(song, separator.stems)
    mixture = np.sum(list(references.values()), axis=0)
    if name == "8stem":  # the 8-stem model is meant for mastered mixes
        mixture = degrade_mix({k: v for k, v in references.items() if np.abs(v).max() > 0}, seed=7).mixture
    estimates = separate(mixture, separator, progress=False)
    assert list(estimates) == list(separator.stems)
    gains = []
    for stem, reference in references.items():
        assert estimates[stem].shape == mixture.shape and np.all(np.isfinite(estimates[stem]))
        if np.abs(reference).max() < 1e-3:
            continue
        gains.append(multi_mel_snr(estimates[stem], reference, 44100) - multi_mel_snr(mixture, reference, 44100))
    assert len(gains) >= 3
    assert np.mean(gains) > 1.0, f"mean gain over the mixture only {np.mean(gains):.2f} dB"
