"""Numba kernels for biquad cascades: transposed direct form II with float64 state (float32 state drifts for low,
sharp filters), float32 or float64 audio in and out. Imported on first use, so ``import msr_lib`` stays fast;
compiled once and cached on disk.

``sos`` is scipy's layout: ``(sections, 6)`` rows ``b0 b1 b2 a0 a1 a2`` with ``a0 = 1``.
"""
import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def cascade_sample(sos, state, c, v):
    """One input sample ``v`` of channel ``c`` through every section; ``state`` (sections, channels, 2) updated."""
    for k in range(sos.shape[0]):
        y = sos[k, 0] * v + state[k, c, 0]
        state[k, c, 0] = sos[k, 1] * v - sos[k, 4] * y + state[k, c, 1]
        state[k, c, 1] = sos[k, 2] * v - sos[k, 5] * y
        v = y
    return v


@numba.njit(cache=True, boundscheck=False)
def sample_by_sample(sos, audio, state, out):
    """The plain cascade over ``(channels, samples)``; ``state`` holds the initial conditions and is updated."""
    for i in range(audio.shape[1]):
        for c in range(audio.shape[0]):
            out[c, i] = cascade_sample(sos, state, c, np.float64(audio[c, i]))
    return out


@numba.njit(cache=True, boundscheck=False)
def wavefront(sos, audio, out):
    """The same cascade from zero state, stereo only, for long cascades: section k works on sample i − k in step i,
    so the sections of one step are independent and run side by side (SIMD) instead of each waiting for the one
    before. Lane 2k + c: section k, channel c."""
    n_sections, n = sos.shape[0], audio.shape[1]
    lanes = 2 * n_sections
    b0, b1, b2 = np.repeat(sos[:, 0], 2), np.repeat(sos[:, 1], 2), np.repeat(sos[:, 2], 2)
    a1, a2 = np.repeat(sos[:, 4], 2), np.repeat(sos[:, 5], 2)
    s1, s2, feed, y = np.zeros(lanes), np.zeros(lanes), np.zeros(lanes), np.zeros(lanes)
    for i in range(n + n_sections - 1):
        feed[0], feed[1] = (audio[0, i], audio[1, i]) if i < n else (0.0, 0.0)
        for k in range(lanes):
            v = feed[k]
            out_k = b0[k] * v + s1[k]
            s1[k] = b1[k] * v - a1[k] * out_k + s2[k]
            s2[k] = b2[k] * v - a2[k] * out_k
            y[k] = out_k
        for k in range(2, lanes):
            feed[k] = y[k - 2]
        if i >= n_sections - 1:
            out[0, i - n_sections + 1], out[1, i - n_sections + 1] = y[lanes - 2], y[lanes - 1]
    return out


@numba.njit(cache=True, boundscheck=False)
def zero_phase(sos, steady, audio, pad):
    """``scipy.signal.sosfiltfilt`` in float64: the signal is extended by its odd reflection about each end sample
    (2·x[0] − x[pad…1] before, 2·x[-1] − x[-2…] after), filtered forward, then backward; each pass starts from the
    settled state (``steady`` = ``sosfilt_zi``) for its first input."""
    channels, n = audio.shape
    forward = np.empty((channels, n + 2 * pad))
    state = np.empty((sos.shape[0], channels, 2))
    for c in range(channels):
        state[:, c, :] = steady * (2.0 * audio[c, 0] - audio[c, pad])
    for j in range(n + 2 * pad):
        for c in range(channels):
            if j < pad:
                v = 2.0 * np.float64(audio[c, 0]) - audio[c, pad - j]
            elif j < n + pad:
                v = np.float64(audio[c, j - pad])
            else:
                v = 2.0 * np.float64(audio[c, n - 1]) - audio[c, 2 * n + pad - 2 - j]
            forward[c, j] = cascade_sample(sos, state, c, v)
    out = np.empty_like(audio)
    for c in range(channels):
        state[:, c, :] = steady * forward[c, n + 2 * pad - 1]
    for j in range(n + 2 * pad - 1, pad - 1, -1):
        for c in range(channels):
            v = cascade_sample(sos, state, c, forward[c, j])
            if j < n + pad:
                out[c, j - pad] = v
    return out
