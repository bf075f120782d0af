"""BS-RoFormer (band-split RoPE transformer, arXiv 2309.02612), weight-compatible with MSST's ``bs_roformer``.

Lesson: notebooks/03_bs_roformer.ipynb (built piece by piece there), notebooks/04_curriculum_lora.ipynb (LoRA on it).

The forward pass in eleven numbered steps; ``docs/DESIGN.md`` ("The BS-RoFormer, step by step") describes each, and
the numbers in the code below are those steps:
1 STFT per channel · 2 stereo fold into the bins · 3 band split (:class:`BandSplit`) · 4 RMSNorm (:class:`RMSNorm`,
used everywhere) · 5 depth × (time transformer, band transformer) · 6 attention with RoPE and per-head gates
(:class:`Attention`) · 7 feed-forward (:class:`FeedForward`) · 8 final norm · 9 per-stem, per-band mask MLPs
(:class:`MaskEstimator`) · 10 complex masking · 11 unfold, zero DC, iSTFT at the input length.
Written from a description of MSST's model and checked against its outputs (``tests/fixtures/msst_bs_roformer/``);
no MSST or lucidrains code.

- :class:`BSRoformer` takes the MSST YAML ``model:`` keys as keyword arguments, and its module names reproduce MSST's
  state-dict keys, so an MSST checkpoint loads with ``strict=True``.
- :func:`load_msst` builds the model from an MSST ``model:`` section and loads an MSST state dict.

The band split and the mask estimators hold one small module per band and call them in a Python loop. A batched form
(one matmul per group of equal-width bands) was removed: on a 2-core CPU the loop took 0.94–1.02× its time.

RoPE frequencies: MSST saves a constant ``rotary_embed.freqs`` vector (10000^(−2i/dim_head)) under every attention
layer. We register it as a persistent, non-trainable *buffer* under the same key, so strict loading of an MSST state
dict works, our own state dicts have the same keys, and it is not counted as a parameter. :func:`load_msst` also
accepts a state dict without those keys (they are constants).

Dimension letters (einops):
    b batch          c audio channels (2 stereo, 1 mono)   s samples
    f STFT bins      t STFT frames                         r real/imag (2)
    k bands          d model width (dim)                   n stems
    h heads          e head width (dim_head)               l sequence (time or band axis)
    w a band's width in features (bins × c × r)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

__all__ = ["BSRoformer", "load_msst", "MSST_44K_BANDS"]

# The published 44.1 kHz split (n_fft 2048): 62 bands, 1025 bins.
MSST_44K_BANDS: tuple[int, ...] = (2,) * 24 + (4,) * 12 + (12,) * 8 + (24,) * 8 + (48,) * 8 + (128, 129)

FF_MULT = 4  # MSST's feed-forward expansion; fixed, not a YAML key


class RMSNorm(nn.Module):
    """Step 4: L2-normalise the last axis (norm clamped at 1e-12), times sqrt(width), times a learned gain ``gamma``."""

    def __init__(self, dim: int):
        super().__init__()
        self.scale = dim**0.5
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) * self.scale * self.gamma


class RotaryEmbedding(nn.Module):
    """Interleaved RoPE: features (2i, 2i+1) rotate by angle pos·freqs[i], freqs[i] = 10000^(−2i/dim)."""

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)
        self.register_buffer("freqs", freqs)  # persistent: MSST's key `rotary_embed.freqs`

    def forward(self, x: Tensor) -> Tensor:
        """x (..., l, e) → same shape, position = index along l starting at 0.

        Each pair (x_2i, x_2i+1) read as the complex number x_2i + i·x_2i+1 and multiplied by e^(i·angle): one
        complex multiply instead of neg/interleave/two products/sum (same maths), computed in float32."""
        pos = torch.arange(x.shape[-2], device=x.device, dtype=self.freqs.dtype)
        angles = torch.outer(pos, self.freqs)  # (l, e/2)
        rotation = torch.polar(torch.ones_like(angles), angles)  # cos + i·sin
        pairs = torch.view_as_complex(rearrange(x.float(), "... (e r) -> ... e r", r=2))  # (..., l, e/2) complex
        return rearrange(torch.view_as_real(pairs * rotation), "... e r -> ... (e r)").to(x.dtype)


class Attention(nn.Module):
    """Step 6: pre-norm multi-head self-attention, RoPE on q and k, a sigmoid gate per head (from the normed input).

    q, k and v are three ``nn.Linear`` modules (``to_q``, ``to_k``, ``to_v``) so that LoRA can target the query and
    value projections alone (lesson 04). MSST stores them fused as one ``to_qkv.weight`` (rows q, then k, then v):
    two state-dict hooks translate, so our state dicts keep MSST's keys and MSST checkpoints load strictly.
    """

    def __init__(self, dim: int, *, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        inner = heads * dim_head
        self.rotary_embed = RotaryEmbedding(dim_head)  # registered first: MSST key order
        self.norm = RMSNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(dim, inner, bias=False)
        self.to_v = nn.Linear(dim, inner, bias=False)
        self.to_gates = nn.Linear(dim, heads)
        self.to_out = nn.Sequential(nn.Linear(inner, dim, bias=False), nn.Dropout(dropout))
        self.register_state_dict_post_hook(_fuse_qkv)
        self.register_load_state_dict_pre_hook(_split_qkv)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(x)  # (b, l, d)
        q, k, v = (rearrange(proj(x), "b l (h e) -> b h l e", h=self.heads) for proj in (self.to_q, self.to_k, self.to_v))
        q, k = self.rotary_embed(q), self.rotary_embed(k)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (b, h, l, e)
        out = out * rearrange(self.to_gates(x), "b l h -> b h l 1").sigmoid()
        return self.to_out(rearrange(out, "b h l e -> b l (h e)"))  # (b, l, d)


_QKV = ("to_q.weight", "to_k.weight", "to_v.weight")


def _fuse_qkv(module: nn.Module, state_dict: dict, prefix: str, local_metadata) -> None:
    """State-dict hook: replace ``to_q/k/v.weight`` by MSST's fused ``to_qkv.weight`` (same place in key order).

    Left alone when the projections are wrapped (e.g. by LoRA: ``to_q.base_layer.weight``)."""
    if not all(prefix + name in state_dict for name in _QKV):
        return
    ours = [key for key in state_dict if key.startswith(prefix)]  # this module's keys are the newest ones
    values = {key: state_dict.pop(key) for key in ours}
    for key in ours:
        if key == prefix + "to_q.weight":
            state_dict[prefix + "to_qkv.weight"] = torch.cat([values[prefix + name] for name in _QKV])
        elif key not in (prefix + "to_k.weight", prefix + "to_v.weight"):
            state_dict[key] = values[key]


def _split_qkv(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """Load hook: split a fused ``to_qkv.weight`` (MSST and our own files) into ``to_q/k/v.weight``."""
    fused = state_dict.pop(prefix + "to_qkv.weight", None)
    if fused is not None:
        for name, part in zip(_QKV, fused.chunk(3, dim=0)):
            state_dict[prefix + name] = part


class FeedForward(nn.Module):
    """Step 7: RMSNorm → Linear(d → 4d) → GELU (erf) → Linear(4d → d); keys ``net.{0,1,4}``."""

    def __init__(self, dim: int, *, dropout: float = 0.0):
        super().__init__()
        hidden = dim * FF_MULT
        self.net = nn.Sequential(
            RMSNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Transformer(nn.Module):
    """``depth`` × (x ← x + Attn(x), x ← x + FF(x)); no output norm. Keys ``layers.{j}.{0: attn, 1: ff}``."""

    def __init__(
        self, *, dim: int, depth: int, heads: int, dim_head: int, attn_dropout: float = 0.0, ff_dropout: float = 0.0
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.ModuleList([
                Attention(dim, heads=heads, dim_head=dim_head, dropout=attn_dropout),
                FeedForward(dim, dropout=ff_dropout),
            ])
            for _ in range(depth)
        )

    def forward(self, x: Tensor) -> Tensor:  # (b, l, d)
        for attn, ff in self.layers:
            x = x + attn(x)
            x = x + ff(x)
        return x


class BandSplit(nn.Module):
    """Step 3: cut each frame's folded spectrum into bands; per band RMSNorm + Linear(width_k → d).

    Keys ``to_features.{k}.{0: norm, 1: linear}``. One small module per band, called in a loop: LoRA or any other
    wrapper can replace a band's Linear and the forward stays the same.
    """

    def __init__(self, dim: int, band_widths: Sequence[int]):
        super().__init__()
        self.band_widths = list(band_widths)
        self.to_features = nn.ModuleList(nn.Sequential(RMSNorm(w), nn.Linear(w, dim)) for w in self.band_widths)

    def forward(self, x: Tensor) -> Tensor:
        """x (b, t, f·c·r) → (b, t, k, d)."""
        bands = x.split(self.band_widths, dim=-1)  # k × (b, t, w_k)
        return torch.stack([to_feature(band) for to_feature, band in zip(self.to_features, bands)], dim=-2)


def mlp(*, dim_in: int, dim_out: int, dim_hidden: int, depth: int) -> nn.Sequential:
    """``depth`` Linears with Tanh between them (Linear, Tanh, …, Linear)."""
    dims = [dim_in] + [dim_hidden] * (depth - 1) + [dim_out]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MaskEstimator(nn.Module):
    """Step 9, one stem: per band MLP(d → 2·width_k) then GLU → width_k; the bands concatenated back into a frame.

    Keys ``to_freqs.{k}.0.{0, 2, …}`` (the MLP's Linears; the GLU has no weights).
    """

    def __init__(self, dim: int, band_widths: Sequence[int], *, depth: int, mlp_expansion_factor: int):
        super().__init__()
        hidden = dim * mlp_expansion_factor
        self.to_freqs = nn.ModuleList(
            nn.Sequential(mlp(dim_in=dim, dim_out=2 * w, dim_hidden=hidden, depth=depth), nn.GLU(dim=-1))
            for w in band_widths
        )

    @torch.no_grad()
    def scale_masks(self, factor: float) -> None:
        """Multiply every mask this head outputs by ``factor`` (0: a silent head): the GLU's value half of each
        band's last Linear is scaled, its gate half kept, so gradients still reach the head."""
        for band in self.to_freqs:  # band = Sequential(mlp, GLU)
            last = band[0][-1]
            values = last.out_features // 2
            last.weight[:values] *= factor
            last.bias[:values] *= factor

    def forward(self, x: Tensor) -> Tensor:
        """x (b, t, k, d) → (b, t, f·c·r), bands in order."""
        bands = x.unbind(dim=-2)  # k × (b, t, d)
        return torch.cat([to_freq(band) for to_freq, band in zip(self.to_freqs, bands)], dim=-1)


class BSRoformer(nn.Module):
    """BS-RoFormer separator; ``model(x)`` with x (batch, channels, samples) → (batch, stems, channels, samples).

    Keyword arguments are MSST's YAML ``model:`` keys. ``linear_transformer_depth`` must be 0 and ``use_pope`` False
    (not implemented); ``dim_freqs_in`` is checked against the band widths; ``multi_stft_*`` (training loss only)
    and ``stft_window_fn`` (only the periodic Hann window is supported) are accepted. ``flash_attn`` is accepted: we
    always use ``scaled_dot_product_attention`` (same maths as MSST's explicit softmax, ~1e-8 apart).
    ``skip_connection`` (add all previous depth layers' outputs before each layer, as MSST does) is implemented but
    not covered by the fixture. ``use_torch_checkpoint`` checkpoints each transformer while training.

    ``residual_stem`` (ours, not an MSST key; MSST models are ``False``): the last stem gets no mask estimator, its
    output is the input minus the sum of the other stems' outputs (in the waveform), so the stems add up to the
    input exactly — the last stem (``other``) is "everything the others leave". Such a model starts with silent
    named stems (their masks 0, so ``other`` is the input): with random masks, the residual `other` starts as the
    input minus random noise and training learned far more slowly (docs/MODEL_CARD.md, the 250-step comparison).
    STFT and iSTFT always run in float32, so the model can run under ``torch.autocast`` (e.g. bf16 on CUDA).
    """

    def __init__(
        self,
        *,
        dim: int,
        depth: int,
        stereo: bool = False,
        num_stems: int = 1,
        time_transformer_depth: int = 2,
        freq_transformer_depth: int = 2,
        linear_transformer_depth: int = 0,
        freqs_per_bands: Sequence[int] = MSST_44K_BANDS,
        dim_head: int = 64,
        heads: int = 8,
        attn_dropout: float = 0.0,
        ff_dropout: float = 0.0,
        flash_attn: bool = True,
        dim_freqs_in: int = 1025,
        stft_n_fft: int = 2048,
        stft_hop_length: int = 512,
        stft_win_length: int = 2048,
        stft_normalized: bool = False,
        stft_window_fn=None,
        mask_estimator_depth: int = 2,
        mlp_expansion_factor: int = 4,
        use_torch_checkpoint: bool = False,
        residual_stem: bool = False,
        skip_connection: bool = False,
        zero_dc: bool = True,
        use_pope: bool = False,
        multi_stft_resolution_loss_weight: float = 1.0,
        multi_stft_resolutions_window_sizes: Sequence[int] = (4096, 2048, 1024, 512, 256),
        multi_stft_hop_size: int = 147,
        multi_stft_normalized: bool = False,
        multi_stft_window_fn=None,
    ):
        config = {k: v for k, v in locals().items() if k not in ("self", "__class__")}  # must stay first
        super().__init__()
        #: The constructor keyword arguments (MSST ``model:`` keys), so ``save_separator`` can rebuild the model.
        self.config = config
        if linear_transformer_depth:
            raise ValueError(f"linear_transformer_depth={linear_transformer_depth} is not supported (only 0)")
        if use_pope:
            raise ValueError("use_pope=True (PoPE positional embedding) is not supported; use RoPE (False)")
        if stft_window_fn is not None:
            raise ValueError("only the default periodic Hann window is supported (stft_window_fn=None)")
        n_bins = stft_n_fft // 2 + 1
        if sum(freqs_per_bands) != n_bins or dim_freqs_in != n_bins:
            raise ValueError(
                f"freqs_per_bands sum to {sum(freqs_per_bands)} and dim_freqs_in is {dim_freqs_in}, "
                f"but n_fft {stft_n_fft} gives {n_bins} bins"
            )
        self.audio_channels = 2 if stereo else 1
        if residual_stem and num_stems < 2:
            raise ValueError(f"residual_stem needs at least 2 stems (the residual and one estimated), got {num_stems}")
        self.num_stems = num_stems
        self.residual_stem = residual_stem
        self.skip_connection = skip_connection
        self.use_torch_checkpoint = use_torch_checkpoint
        self.zero_dc = zero_dc
        self.stft_kwargs = dict(
            n_fft=stft_n_fft, hop_length=stft_hop_length, win_length=stft_win_length, normalized=stft_normalized
        )
        self.register_buffer("stft_window", torch.hann_window(stft_win_length), persistent=False)

        # Registration order = MSST state-dict order: layers, final_norm, band_split, mask_estimators.
        tf = dict(dim=dim, heads=heads, dim_head=dim_head, attn_dropout=attn_dropout, ff_dropout=ff_dropout)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                [Transformer(depth=time_transformer_depth, **tf), Transformer(depth=freq_transformer_depth, **tf)]
            )
            for _ in range(depth)
        )
        self.final_norm = RMSNorm(dim)
        band_widths = [2 * self.audio_channels * f for f in freqs_per_bands]  # bins × channels × (re, im)
        self.band_split = BandSplit(dim, band_widths)
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(dim, band_widths, depth=mask_estimator_depth, mlp_expansion_factor=mlp_expansion_factor)
            for _ in range(num_stems - residual_stem)
        )
        if residual_stem:  # a new residual model starts silent in every named stem, its `other` = the input
            for head in self.mask_estimators:
                head.scale_masks(0.0)

    def _run(self, block: nn.Module, x: Tensor) -> Tensor:
        if self.use_torch_checkpoint and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward(self, audio: Tensor) -> Tensor:
        """audio (b, c, s) → separated stems (b, n, c, s)."""
        if audio.ndim != 3 or audio.shape[1] != self.audio_channels:
            raise ValueError(
                f"expected audio of shape (batch, {self.audio_channels}, samples), got {tuple(audio.shape)}"
                + (" (this model is stereo: duplicate a mono channel first)" if self.audio_channels == 2 else "")
            )
        b, c, s = audio.shape
        device_type = audio.device.type

        # 1. STFT per channel, always in float32. 2. Stereo folded into the bins (row = bin·c + channel).
        with torch.autocast(device_type, enabled=False):
            spec = torch.stft(
                rearrange(audio.float(), "b c s -> (b c) s"), **self.stft_kwargs, window=self.stft_window,
                center=True, return_complex=True,
            )  # (b·c, f, t) complex
        spec = rearrange(spec, "(b c) f t -> b (f c) t", c=c)  # (b, f·c, t) complex
        x = rearrange(torch.view_as_real(spec), "b fc t r -> b t (fc r)")  # (b, t, f·c·r)

        # 3. Band split.
        x = self.band_split(x)  # (b, t, k, d)
        frames, bands = x.shape[1], x.shape[2]

        # 5. Axial transformer: time (per band), then bands (per frame); steps 6-7 inside each.
        outputs: list[Tensor] = []
        for time_tf, freq_tf in self.layers:
            if self.skip_connection:
                for previous in outputs:
                    x = x + previous
            x = rearrange(x, "b t k d -> (b k) t d")
            x = self._run(time_tf, x)  # (b·k, t, d)
            x = rearrange(x, "(b k) t d -> (b t) k d", b=b)
            x = self._run(freq_tf, x)  # (b·t, k, d)
            x = rearrange(x, "(b t) k d -> b t k d", b=b, t=frames, k=bands)
            if self.skip_connection:
                outputs.append(x)

        # 8. Final norm. 9. One mask per stem.
        x = self.final_norm(x)  # (b, t, k, d)
        masks = torch.stack([est(x) for est in self.mask_estimators], dim=1)  # (b, n, t, f·c·r); n − 1 if residual

        # 10. Complex masking. 11. Unfold, zero DC (optional), iSTFT at the input length.
        with torch.autocast(device_type, enabled=False):
            masks = torch.view_as_complex(rearrange(masks.float(), "b n t (fc r) -> b n fc t r", r=2).contiguous())
            out = spec.unsqueeze(1) * masks  # (b, n, f·c, t) complex
            out = rearrange(out, "b n (f c) t -> (b n c) f t", c=c)
            if self.zero_dc:
                out = out.index_fill(-2, torch.tensor([0], device=out.device), 0)
            wav = torch.istft(out, **self.stft_kwargs, window=self.stft_window, center=True, length=s)  # (b·n·c, s)
            wav = rearrange(wav, "(b n c) s -> b n c s", b=b, c=c)
            if self.residual_stem:  # the last stem: what the estimated ones leave of the input
                residual = audio.float() - wav.sum(dim=1)  # (b, c, s)
                wav = torch.cat([wav, residual.unsqueeze(1)], dim=1)  # (b, n, c, s)
        return wav


def _unwrap_state_dict(state_dict: Mapping) -> Mapping:
    for key in ("state", "state_dict", "model_state_dict"):
        if key in state_dict and isinstance(state_dict[key], Mapping):
            return state_dict[key]
    return state_dict


def load_msst(config: Mapping, state_dict: Mapping) -> BSRoformer:
    """Build :class:`BSRoformer` from an MSST ``model:`` config section and load an MSST state dict.

    ``config`` may also be a whole MSST config with a ``model`` mapping. The state dict may sit under ``state``,
    ``state_dict`` or ``model_state_dict``. All weights must match exactly (missing or unexpected keys raise
    ``RuntimeError``), except the constant ``rotary_embed.freqs`` keys, which may be absent. Returns the model in
    eval mode.
    """
    if isinstance(config.get("model"), Mapping):
        config = config["model"]
    model = BSRoformer(**dict(config))
    state_dict = _unwrap_state_dict(state_dict)
    result = model.load_state_dict(state_dict, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("rotary_embed.freqs")]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"MSST state dict does not match BSRoformer: {len(missing)} missing keys {missing[:5]}, "
            f"{len(result.unexpected_keys)} unexpected keys {result.unexpected_keys[:5]}"
        )
    return model.eval()
