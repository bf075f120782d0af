"""Separator and restorer checkpoints: save ours (a folder with ``config.json`` + ``model.safetensors``), load ours
or MSST's separators.

Our separator format (``format_version`` 1)::

    folder/config.json        {"model_type": "bs_roformer", "model": {<BSRoformer kwargs>},
                               "stems": [<canonical names, model output order>], "sample_rate": 44100,
                               "format_version": 1, ...extra}
    folder/model.safetensors  the state dict (no pickle anywhere)

``model`` holds every :class:`~msr_lib.models.BSRoformer` keyword argument, ``residual_stem`` included (``true``: the
last stem is the input minus the others); a config without it (MSST's, older folders) loads a masking model, one mask
per stem.

An MSST checkpoint is a torch file (``.ckpt``/``.pt``/``.pth``, read with ``weights_only=True``) or a
``.safetensors`` file, with its YAML config next to it: the same name with ``.yaml``/``.yml``, or else the only YAML
file in that folder. Its stems come from ``training.target_instrument`` (single-stem models) or
``training.instruments``, mapped to canonical names in the model's output order.

:func:`export_separator` (``msr export``) writes a copy with fp16 weights: how the bundled separators were made.

Restorers (the HiFi++ generator, :class:`~msr_lib.models.hifipp.HiFiPlusPlus`) use the same layout::

    folder/config.json        {"model_type": "hifipp_restorer", "model": {<HiFiPlusPlus kwargs>},
                               "stem": "<canonical stem, or 'all' for the generalist>", "sample_rate": 44100,
                               "format_version": 1, ...extra}
    folder/model.safetensors

or, for a LoRA expert, an adapter on a base restorer instead of the full weights::

    folder/config.json        the same keys ("model": the base's kwargs) plus
                              "lora": {"base": "<bundled:generalist, or a path>", <peft LoraConfig fields>}
    folder/lora_adapter.safetensors   the adapter weights only (peft's state-dict keys, as the curriculum saves them)

A base path is stored relative to the adapter folder, so a runs tree can move as a whole. :func:`load_restorer`
applies the adapter to its base and merges it: a LoRA expert costs the same at inference as a full one. peft 0.21
puts LoRA on ``Conv1d``/``Conv2d`` layers but not on the upsampler's ``ConvTranspose1d``, and its LoRA convolution
ignores ``dilation``: target undilated convolutions only (e.g. the residual blocks' ``plain`` ones, the U-Nets').
Bundled restorers live in ``bundled/restorers/<name>/``: ``generalist`` and one expert per instrument stem.

Every failure a user can cause (missing or corrupt file, unknown ``model_type``, weights that do not fit the config)
raises :class:`~msr_lib.errors.MSRError` with one line.

Untrusted files: loading never runs code from a file. Weights are read by safetensors or by :func:`load_torch_file`
(``torch.load(weights_only=True)``: tensors and plain containers only, so a pickled object is refused before it is
built); YAML with a safe loader; ``config.json`` as data (:func:`~msr_lib.audio.read_json_object`, at most
:data:`MAX_CONFIG_BYTES`). A config is checked before any weight is read or any layer built: every size keyword
must be a number of the right type, and :func:`model_size` (computed from the config alone) must stay within
:data:`MAX_MODEL_WEIGHTS` numbers and :data:`MAX_MODEL_TENSORS` tensors.

Lessons: notebooks/03_bs_roformer.ipynb, notebooks/05_hifipp_restorer.ipynb
"""
from __future__ import annotations

import collections.abc
import functools
import inspect
import json
import math
import os
import pickle
import re
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from msr_lib.audio import SAMPLE_RATE, _umask, atomic_output_dir, read_json_object
from msr_lib.errors import MSRError
from msr_lib.models.bs_roformer import FF_MULT, BSRoformer, _unwrap_state_dict, load_msst
from msr_lib.models.hifipp import HiFiPlusPlus
from msr_lib.stems import canonical_stem

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
ADAPTER_NAME = "lora_adapter.safetensors"
#: what a saved model folder holds: saving replaces a folder holding nothing else, refuses any other
MODEL_FOLDER_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, ADAPTER_NAME})
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"  # <name>/config.json + model.safetensors (fp16)
BUNDLED_RESTORERS_DIR = BUNDLED_DIR / "restorers"  # generalist/, bass/, …: the same layout
DEFAULT_SEPARATOR = "bundled:8stem"
DEFAULT_RESTORER = "bundled:generalist"
RUN_CHECKPOINT = "checkpoint"  # a training run keeps its latest checkpoint folder here
MODEL_TYPES = ("bs_roformer",)
RESTORER_MODEL_TYPE = "hifipp_restorer"
GENERALIST_STEM = "all"  # the ``stem`` of a restorer trained on every stem
_LOADERS = {**dict.fromkeys(MODEL_TYPES, "load_separator"), RESTORER_MODEL_TYPE: "load_restorer"}
_RESERVED = ("model_type", "model", "stems", "sample_rate", "format_version")
_RESTORER_RESERVED = ("model_type", "model", "stem", "sample_rate", "format_version", "lora")
_TORCH_SUFFIXES = (".ckpt", ".pt", ".pth")
_YAML_SUFFIXES = (".yaml", ".yml")
#: the largest ``config.json`` or MSST YAML read (ours are ~3 kB, MSST's a few kB)
MAX_CONFIG_BYTES = 2**20
#: the most numbers (weights and buffers) a config may describe: 8 GB as float32, ~5x the paper preset's 9-stem
#: separator (427 M) or the largest public MSST BS-RoFormers (~570 M for 6 stems at dim 512, depth 12)
MAX_MODEL_WEIGHTS = 2_000_000_000
#: the most tensors a config may describe (each one a module to build): 20x the paper preset's 9-stem separator
MAX_MODEL_TENSORS = 50_000
#: the highest LoRA rank an adapter config may ask for (ours use 4)
MAX_LORA_RANK = 1024
#: the highest sample rate a checkpoint may declare
MAX_SAMPLE_RATE = 768_000


class Separator(nn.Module):
    """A loaded separator: ``sep(x)`` with x (batch, channels, samples) → (batch, stems, channels, samples).

    ``stems`` are canonical names in the model's output order; ``config`` is the checkpoint's config
    (ours: the ``config.json`` mapping; MSST: the whole YAML mapping).
    """

    def __init__(self, model: nn.Module, stems, sample_rate: int = SAMPLE_RATE, config: Mapping | None = None):
        super().__init__()
        self.model = model
        self.stems = tuple(stems)
        self.sample_rate = int(sample_rate)
        self.config = dict(config or {})

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model(audio)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _canonical_stems(stems, num_stems: int, where: str) -> list[str]:
    if isinstance(stems, str) or not isinstance(stems, (list, tuple)) or not stems:
        raise MSRError(f"{where}: stems must be a non-empty list of names, got {stems!r}")
    names = [canonical_stem(str(s)) for s in stems]
    if len(set(names)) != len(names):
        raise MSRError(f"{where}: stems {names} name the same stem twice")
    if len(names) != num_stems:
        raise MSRError(f"{where}: {len(names)} stems {names} but the model has {num_stems} outputs")
    return names


# ---------------------------------------------------------------- saving

def save_separator(
    model: nn.Module, folder, *, stems, extra: dict | None = None, dtype: torch.dtype | None = None
) -> Path:
    """Write ``model`` as a checkpoint folder (``config.json`` + ``model.safetensors``), atomically; returns the folder.

    ``stems`` name the model's outputs in order (aliases are mapped to canonical names). ``extra`` keys are added to
    ``config.json`` (they may not override the reserved keys). ``dtype`` (e.g. ``torch.float16``) casts floating-point
    weights on disk; loading casts them back to the model's float32. An existing model folder is replaced only after
    the new one is complete; a folder holding other files (:data:`MODEL_FOLDER_FILES`) is refused in one line.
    """
    folder = Path(folder)
    with atomic_output_dir(folder, replaces=MODEL_FOLDER_FILES) as tmp:
        write_separator_files(model, tmp, stems=stems, extra=extra, dtype=dtype)
    return folder


def write_separator_files(
    model: nn.Module, folder, *, stems, extra: dict | None = None, dtype: torch.dtype | None = None,
    adapter: Mapping | None = None,
) -> None:
    """Write ``config.json`` + ``model.safetensors`` into an existing (e.g. temporary) folder; see
    :func:`save_separator`, which wraps this in an atomic folder. ``adapter``: the LoRA weights the model was
    merged from (a peft adapter state dict), written beside it as :data:`ADAPTER_NAME` (a LoRA stage's run)."""
    if isinstance(model, Separator):
        model = model.model
    if not isinstance(model, BSRoformer):
        raise MSRError(f"save_separator supports BSRoformer models only, got {type(model).__name__}")
    stems = _canonical_stems(stems, model.num_stems, "save_separator")
    config = {
        "model_type": "bs_roformer", "model": _json_model_config(model), "stems": stems, "sample_rate": SAMPLE_RATE,
        "format_version": FORMAT_VERSION, **_checked_extra(extra, _RESERVED, "save_separator"),
    }
    weights = {WEIGHTS_NAME: _tensors(model.state_dict(), dtype)}
    if adapter is not None:
        weights[ADAPTER_NAME] = _tensors(adapter, dtype)
    _write_files(Path(folder), config, weights, "save_separator")


def _json_model_config(model: nn.Module) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.items()}


def _checked_extra(extra: dict | None, reserved, where: str) -> dict:
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(reserved))
    if clash:
        raise MSRError(f"{where}: extra may not override {', '.join(clash)}")
    return extra


def _tensors(state_dict: Mapping, dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """CPU copies of ``state_dict`` for safetensors, floating-point ones cast to ``dtype`` when given."""
    tensors = {}
    for key, value in state_dict.items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.cpu().contiguous().clone()  # clone: no shared storage (safetensors refuses it)
    return tensors


def _write_files(folder: Path, config: dict, weights: Mapping[str, dict], where: str) -> None:
    """Write ``config.json`` and each ``{file name: tensors}`` of ``weights`` into ``folder``."""
    try:
        config_text = json.dumps(config, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise MSRError(f"{where}: config is not JSON-serialisable ({_one_line(exc)})") from None
    (folder / CONFIG_NAME).write_text(config_text)
    for name, tensors in weights.items():
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        os.chmod(folder / name, 0o666 & ~_umask())  # safetensors writes 0600


def export_separator(source, folder, *, dtype: torch.dtype = torch.float16) -> Path:
    """Write the separator at ``source`` (anything :func:`load_separator` reads, e.g. a training run) as a checkpoint
    folder with ``dtype`` weights (fp16 halves the size; loading casts back to float32). The config keeps the
    source's ``training`` record plus ``training.run`` (where it came from). Returns the folder."""
    separator = load_separator(source)
    training = dict(separator.config.get("training", {}), run=str(source))
    return save_separator(separator.model, folder, stems=separator.stems, dtype=dtype, extra={"training": training})


# ---------------------------------------------------------------- loading

def bundled_separators() -> list[str]:
    """Names of the separators shipped in this checkout (``load_separator("bundled:<name>")``)."""
    return _bundled_names(BUNDLED_DIR)


def _bundled_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / CONFIG_NAME).is_file())


def _checkpoint_path(path, *, kind: str, bundled_dir: Path, bundled) -> Path:
    """``"bundled:<name>"`` (``bundled()`` lists the names) → its folder; a training run folder → its checkpoint
    folder; any other path that exists → itself."""
    if isinstance(path, str) and path.startswith("bundled:"):
        name = path.split(":", 1)[1]
        available = bundled()
        if name not in available:
            raise MSRError(f"no bundled {kind} {name!r} in this checkout (available: "
                           f"{', '.join(available) or 'none yet'}); train one or pass a checkpoint path")
        path = bundled_dir / name
    path = Path(path)
    if not path.exists():
        raise MSRError(f"no such checkpoint: {path}")
    if path.is_dir() and not (path / CONFIG_NAME).is_file() and (path / RUN_CHECKPOINT / CONFIG_NAME).is_file():
        path = path / RUN_CHECKPOINT  # a training run folder (msr train): its latest checkpoint
    return path


def load_separator(path=DEFAULT_SEPARATOR, *, device="cpu") -> Separator:
    """Load a separator: ``"bundled:<name>"`` (shipped with the workbench; default ``bundled:8stem``), a training
    run folder, our checkpoint folder (or its ``config.json``) or an MSST checkpoint file + YAML.

    Returns a :class:`Separator` in eval mode on ``device``.
    """
    path = _checkpoint_path(path, kind="separator", bundled_dir=BUNDLED_DIR, bundled=bundled_separators)
    if path.is_dir() or path.name == CONFIG_NAME:
        folder = path if path.is_dir() else path.parent
        if not (folder / CONFIG_NAME).is_file():
            raise MSRError(f"{folder} is not a separator checkpoint folder (no {CONFIG_NAME})")
        separator = _load_folder(folder)
    elif path.suffix.lower() in _TORCH_SUFFIXES + (".safetensors",):
        separator = _load_msst(path)
    else:
        raise MSRError(
            f"{path}: not a checkpoint (expected a folder with {CONFIG_NAME}, or a .ckpt/.pt/.pth/.safetensors file)"
        )
    return separator.to(device).eval()


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupt files
        raise MSRError(f"cannot read weights {path}: {_one_line(exc)}") from None


def load_torch_file(path) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors, numbers, strings and plain containers only.

    A file that pickles anything else (a class, a function: what could run code) is refused before it is built;
    that and every other failure (missing, truncated, not a torch file) is one :class:`MSRError` line naming it."""
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the refusal below says what matters
            warnings.simplefilter("ignore")
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        names = f" ({found.group(1)})" if found else ""
        raise MSRError(f"{path}: refused: it pickles Python objects{names} besides tensors, and unpickling them "
                       "could run code; only weights are read") from None
    except Exception as exc:  # a missing, truncated or corrupt file
        raise MSRError(f"cannot read checkpoint {path}: {_one_line(exc)}") from None


def _build(model_config, state_dict: Mapping, where, *, make=load_msst) -> nn.Module:
    """``make(model_config, state_dict)`` (a model with those weights loaded), its failures as one line;
    ``model_config`` passed :func:`_check_model_size` first."""
    if isinstance(state_dict, Mapping):
        state_dict = _unwrap_state_dict(state_dict)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise MSRError(f"{where}: the checkpoint does not hold a state dict of tensors")
    try:
        return make(dict(model_config), state_dict)
    except (TypeError, ValueError, RuntimeError, IndexError, ZeroDivisionError) as exc:
        raise MSRError(f"{where}: weights do not fit the config ({_one_line(exc)})") from None


def _read_config(folder: Path, model_types) -> dict:
    """``folder/config.json``, checked: a JSON object of one of ``model_types`` in a format this library reads."""
    config_path = folder / CONFIG_NAME
    config = read_json_object(config_path, max_bytes=MAX_CONFIG_BYTES)
    model_type = config.get("model_type")
    if model_type not in model_types:
        if model_type in _LOADERS:
            raise MSRError(f"{config_path}: model_type {model_type!r} is not loaded here; use "
                           f"{_LOADERS[model_type]}")
        raise MSRError(f"{config_path}: unknown model_type {model_type!r} (supported: {', '.join(model_types)})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MSRError(f"{config_path}: unsupported format_version {version!r} (this library reads up to "
                       f"{FORMAT_VERSION})")
    return config


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    weight_files = [folder / WEIGHTS_NAME] if (folder / WEIGHTS_NAME).is_file() else sorted(
        folder.glob("model*.safetensors"))
    if not weight_files:
        raise MSRError(f"{folder}: no model*.safetensors weights next to {CONFIG_NAME}")
    state_dict: dict[str, torch.Tensor] = {}
    for file in weight_files:  # one file normally; several shards are merged
        state_dict.update(_read_safetensors(file))
    return state_dict


def _load_folder(folder: Path) -> Separator:
    config = _read_config(folder, MODEL_TYPES)
    where = folder / CONFIG_NAME
    _check_model_size(BSRoformer, config.get("model"), where)
    sample_rate = _sample_rate(config.get("sample_rate", SAMPLE_RATE), f"{where}: sample_rate")
    model = _build(config.get("model"), _read_weights(folder), folder)
    stems = _canonical_stems(config.get("stems"), model.num_stems, str(where))
    return Separator(model, stems, sample_rate, config)


def _find_yaml(ckpt: Path) -> Path:
    for suffix in _YAML_SUFFIXES:
        candidate = ckpt.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    yamls = sorted(p for p in ckpt.parent.iterdir() if p.suffix.lower() in _YAML_SUFFIXES and p.is_file())
    if len(yamls) == 1:
        return yamls[0]
    if not yamls:
        raise MSRError(f"{ckpt}: no YAML config next to it (expected {ckpt.with_suffix('.yaml').name})")
    raise MSRError(
        f"{ckpt}: {len(yamls)} YAML configs next to it and none named {ckpt.with_suffix('.yaml').name}; "
        "rename the matching one"
    )


def _read_yaml(path: Path) -> dict:
    import yaml

    class _Loader(yaml.SafeLoader):
        """Safe loading plus ``!!python/tuple`` (read as a tuple), which public MSST configs use."""

    _Loader.add_constructor(
        "tag:yaml.org,2002:python/tuple", lambda loader, node: tuple(loader.construct_sequence(node))
    )
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise MSRError(f"{path}: {path.stat().st_size:,} bytes, more than the {MAX_CONFIG_BYTES:,} a config "
                           "may have")
        config = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as exc:  # ValueError: bad UTF-8, a huge integer
        raise MSRError(f"cannot read {path}: {_one_line(exc)}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise MSRError(f"{path}: not an MSST config (no `model:` mapping)")
    return config


def _msst_stems(config: dict, yaml_path: Path) -> list:
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    target = training.get("target_instrument")
    if target:
        return [target]
    instruments = training.get("instruments")
    if not instruments:
        raise MSRError(f"{yaml_path}: no training.instruments list naming the model's stems")
    return instruments


def _load_msst(ckpt: Path) -> Separator:
    yaml_path = _find_yaml(ckpt)
    config = _read_yaml(yaml_path)
    model_type = config.get("model_type", "bs_roformer")
    if model_type not in MODEL_TYPES:
        raise MSRError(f"{yaml_path}: unknown model_type {model_type!r} (supported: {', '.join(MODEL_TYPES)})")
    _check_model_size(BSRoformer, config["model"], yaml_path)
    audio = config.get("audio") if isinstance(config.get("audio"), dict) else {}
    sample_rate = _sample_rate(audio.get("sample_rate", SAMPLE_RATE), f"{yaml_path}: audio.sample_rate")
    state_dict = _read_safetensors(ckpt) if ckpt.suffix.lower() == ".safetensors" else load_torch_file(ckpt)
    model = _build(config["model"], state_dict, ckpt)
    stems = _canonical_stems(_msst_stems(config, yaml_path), model.num_stems, str(yaml_path))
    return Separator(model, stems, sample_rate, config)


# ---------------------------------------------------------------- config checks (before anything is built)

def _short(value) -> str:
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        return type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _is_size(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_MODEL_WEIGHTS


def _sample_rate(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SAMPLE_RATE:
        raise MSRError(f"{where} must be an integer from 1 to {MAX_SAMPLE_RATE:,} Hz, got {_short(value)}")
    return value


@functools.lru_cache(maxsize=None)
def _keywords(model_class: type) -> tuple[dict, dict]:
    """``model_class``'s constructor keywords: (their defaults, their annotated types)."""
    parameters = inspect.signature(model_class.__init__).parameters
    defaults = {name: p.default for name, p in parameters.items() if p.default is not inspect.Parameter.empty}
    return defaults, typing.get_type_hints(model_class.__init__)


def _checked_keywords(model_class: type, model_config, where) -> dict:
    """Every constructor keyword of ``model_class`` (``model_config``'s values, else the defaults), each given value
    checked against its annotation: ``int`` an integer in [0, :data:`MAX_MODEL_WEIGHTS`], ``bool`` a boolean,
    ``float`` a finite number, ``Sequence[int]`` a list of at most :data:`MAX_MODEL_TENSORS` such integers.
    Unknown keys are left to the constructor (it refuses them)."""
    if not isinstance(model_config, Mapping):
        raise MSRError(f"{where}: the model config must be a mapping, got {type(model_config).__name__}")
    defaults, hints = _keywords(model_class)
    checks = {
        int: (_is_size, f"an integer from 0 to {MAX_MODEL_WEIGHTS:,}"),
        bool: (lambda v: isinstance(v, bool), "true or false"),
        float: (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                "a finite number"),
        collections.abc.Sequence: (
            lambda v: isinstance(v, (list, tuple)) and len(v) <= MAX_MODEL_TENSORS and all(map(_is_size, v)),
            f"a list of at most {MAX_MODEL_TENSORS:,} integers from 0 to {MAX_MODEL_WEIGHTS:,}"),
    }
    keywords = dict(defaults)
    for name, value in model_config.items():
        hint = hints.get(name)
        check = checks.get(typing.get_origin(hint) or hint)
        if check is not None and not check[0](value):
            raise MSRError(f"{where}: model.{name} must be {check[1]}, got {_short(value)}")
        keywords[name] = value
    missing = sorted(set(hints) - set(keywords))
    if missing:
        raise MSRError(f"{where}: the model config has no {', '.join(missing)}")
    return keywords


def _conv(cin: int, cout: int, kernel: int, dims: int) -> int:
    return cin * cout * kernel**dims + cout


def _unet_size(in_channels: int, out_channels: int, widths, depth: int, kernel: int, stride: int,
               dims: int) -> tuple[int, int]:
    """(numbers, tensors) of :class:`~msr_lib.models.hifipp.UNet`."""
    def block(cin: int, cout: int) -> int:  # depth convolutions, the first cin → cout
        return _conv(cin, cout, kernel, dims) + (depth - 1) * _conv(cout, cout, kernel, dims) if depth else 0

    inner = widths[:-1]
    numbers = sum(block(cin, cout) for cin, cout in zip((in_channels, *inner), widths))
    numbers += sum(_conv(w, w, stride, dims) + block(w, w) for w in inner)                     # downs, decoders
    numbers += sum(_conv(cout, cin, kernel, dims) for cin, cout in zip(inner, widths[1:]))      # ups
    numbers += _conv(widths[0], out_channels, 1, dims)
    return numbers, 2 * depth * len(widths) + 2 * len(inner) * (1 + depth) + 2 * len(inner) + 2


def _bs_roformer_size(k: dict) -> tuple[int, int]:
    """(numbers, tensors) of :class:`~msr_lib.models.BSRoformer` from its keywords."""
    dim, heads, dim_head = k["dim"], k["heads"], k["dim_head"]
    inner, hidden = heads * dim_head, dim * FF_MULT
    attention = dim_head // 2 + dim + 3 * dim * inner + dim * heads + heads + inner * dim   # freqs, norm, q/k/v…
    feed_forward = dim + (dim * hidden + hidden) + (hidden * dim + dim)
    layers = k["depth"] * (k["time_transformer_depth"] + k["freq_transformer_depth"])
    widths = [2 * (2 if k["stereo"] else 1) * f for f in k["freqs_per_bands"]]
    bands, width = len(widths), sum(widths)
    band_split = width + width * dim + bands * dim
    mlp_hidden, mlp_depth = dim * k["mlp_expansion_factor"], k["mask_estimator_depth"]
    if mlp_depth <= 1:  # one Linear dim → 2·w per band
        mask, mask_tensors = (dim + 1) * 2 * width, 2 * bands
    else:
        mask = (bands * ((dim + 1) * mlp_hidden + (mlp_depth - 2) * (mlp_hidden + 1) * mlp_hidden)
                + (mlp_hidden + 1) * 2 * width)
        mask_tensors = 2 * mlp_depth * bands
    heads_with_masks = max(0, k["num_stems"] - bool(k["residual_stem"]))
    numbers = (layers * (attention + feed_forward) + dim + band_split + heads_with_masks * mask
               + k["stft_win_length"])
    tensors = layers * 13 + 1 + 3 * bands + heads_with_masks * mask_tensors + 1
    return numbers, tensors


def _hifipp_size(k: dict, where) -> tuple[int, int]:
    """(numbers, tensors) of :class:`~msr_lib.models.hifipp.HiFiPlusPlus` from its keywords."""
    for name in ("spectral_unet_widths", "wave_unet_widths", "mask_unet_widths"):
        if not k[name]:
            raise MSRError(f"{where}: model.{name} must list at least one width")
    n_mels, channels, rates = k["n_mels"], k["upsampler_channels"], k["upsample_rates"]
    spectral = _unet_size(2, 1, k["spectral_unet_widths"], k["spectral_unet_depth"], 3, 2, 2)
    numbers, tensors = spectral[0] + n_mels * (k["mel_n_fft"] // 2 + 1) + k["mel_n_fft"], spectral[1] + 2
    if k["cond_dim"] > 0:
        numbers, tensors = numbers + _conv(k["cond_dim"], n_mels, 1, 1), tensors + 2
    numbers, tensors = numbers + _conv(n_mels, channels, 7, 1), tensors + 2                # upsampler.pre
    kernels, dilations = k["resblock_kernels"], len(k["resblock_dilations"])
    for i, rate in enumerate(rates):
        cin, cout = channels >> i, channels >> (i + 1)
        numbers += cin * cout * 2 * rate + cout                                             # ConvTranspose1d
        numbers += 2 * dilations * (cout * cout * sum(kernels) + cout * len(kernels))      # residual blocks
    tensors += len(rates) * (2 + 4 * dilations * len(kernels))
    wave = _unet_size((channels >> len(rates)) + 1, 1, k["wave_unet_widths"], k["wave_unet_depth"], 5, 4, 1)
    mask = _unet_size(1, 1, k["mask_unet_widths"], k["mask_unet_depth"], 3, 2, 2)
    bins = k["mask_n_fft"] // 2 + 1
    numbers += wave[0] + mask[0] + k["mask_n_fft"] + (2 * k["mask_bands"] * bins if k["mask_bands"] else 0)
    tensors += wave[1] + mask[1] + 1 + (2 if k["mask_bands"] else 0)
    return numbers, tensors


def model_size(model_class: type, model_config, where="model config") -> tuple[int, int]:
    """``(numbers, tensors)``: the weights and buffers (counted as numbers and as tensors) of a ``model_class``
    (:class:`~msr_lib.models.BSRoformer` or :class:`~msr_lib.models.HiFiPlusPlus`) built from ``model_config``,
    computed from the config alone (nothing is built). Sizes of the wrong type raise one :class:`MSRError` line
    (``where`` names the config)."""
    keywords = _checked_keywords(model_class, model_config, where)
    if model_class is BSRoformer:
        return _bs_roformer_size(keywords)
    if model_class is HiFiPlusPlus:
        return _hifipp_size(keywords, where)
    raise MSRError(f"model_size knows BSRoformer and HiFiPlusPlus, not {model_class.__name__}")


def _count(n: int) -> str:
    return f"{n:,}" if n < 10**15 else f"about 10^{int(n.bit_length() * math.log10(2))}"


def _check_model_size(model_class: type, model_config, where) -> None:
    """Refuse, in one line, a config whose model would exceed :data:`MAX_MODEL_WEIGHTS` or
    :data:`MAX_MODEL_TENSORS` (before reading weights or building anything)."""
    numbers, tensors = model_size(model_class, model_config, where)
    if numbers > MAX_MODEL_WEIGHTS or tensors > MAX_MODEL_TENSORS:
        raise MSRError(f"{where}: the config describes a model of {_count(numbers)} numbers in {_count(tensors)} "
                       f"tensors, over the limit of {MAX_MODEL_WEIGHTS:,} numbers and {MAX_MODEL_TENSORS:,} "
                       "tensors; refused before building it")


# ---------------------------------------------------------------- restorers

class Restorer(nn.Module):
    """A loaded restorer: ``restorer(x)`` with x (batch, channels, samples) → the restored stem, the same shape.

    ``model`` is the :class:`~msr_lib.models.hifipp.HiFiPlusPlus` generator (a LoRA expert's adapter merged into
    it), ``stem`` the canonical stem it was trained on (``"all"``: the generalist), ``config`` its ``config.json``.
    """

    def __init__(self, model: HiFiPlusPlus, *, stem: str, config: Mapping | None = None):
        super().__init__()
        self.model = model
        self.stem = stem
        self.config = dict(config or {})

    def forward(self, audio: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(audio, cond)


def _restorer_stem(stem, where: str) -> str:
    if not isinstance(stem, str):
        raise MSRError(f"{where}: stem must be a stem name or {GENERALIST_STEM!r}, got {stem!r}")
    if stem.strip().lower() == GENERALIST_STEM:
        return GENERALIST_STEM
    try:
        return canonical_stem(stem)
    except MSRError as exc:
        raise MSRError(f"{where}: {exc} or {GENERALIST_STEM!r}") from None


def _restorer_config(model: HiFiPlusPlus, *, stem, extra: dict | None, where: str) -> dict:
    return {
        "model_type": RESTORER_MODEL_TYPE, "model": _json_model_config(model), "stem": _restorer_stem(stem, where),
        "sample_rate": model.sample_rate, "format_version": FORMAT_VERSION,
        **_checked_extra(extra, _RESTORER_RESERVED, where),
    }


def save_restorer(model: HiFiPlusPlus, folder, *, stem: str, dtype: torch.dtype | None = None,
                  extra: dict | None = None) -> Path:
    """Write ``model`` (a :class:`HiFiPlusPlus` or a :class:`Restorer`) as a restorer folder, atomically; returns
    the folder. ``stem``: the canonical stem it restores, or ``"all"``; ``dtype`` and ``extra`` as in
    :func:`save_separator` (and so is what it replaces)."""
    folder = Path(folder)
    with atomic_output_dir(folder, replaces=MODEL_FOLDER_FILES) as tmp:
        write_restorer_files(model, tmp, stem=stem, dtype=dtype, extra=extra)
    return folder


def write_restorer_files(model: HiFiPlusPlus, folder, *, stem: str, dtype: torch.dtype | None = None,
                         extra: dict | None = None) -> None:
    """Write a restorer's ``config.json`` + ``model.safetensors`` into an existing (e.g. temporary) folder; see
    :func:`save_restorer`, which wraps this in an atomic folder."""
    if isinstance(model, Restorer):
        model = model.model
    if not isinstance(model, HiFiPlusPlus):
        raise MSRError(f"save_restorer supports HiFiPlusPlus models only, got {type(model).__name__} "
                       "(a peft model: save_restorer_adapter)")
    config = _restorer_config(model, stem=stem, extra=extra, where="save_restorer")
    _write_files(Path(folder), config, {WEIGHTS_NAME: _tensors(model.state_dict(), dtype)}, "save_restorer")


def save_restorer_adapter(model, folder, *, stem: str, base: str, lora_config: dict,
                          dtype: torch.dtype | None = None, extra: dict | None = None) -> Path:
    """Write a LoRA expert as an adapter folder (``config.json`` + ``lora_adapter.safetensors``), atomically;
    returns the folder.

    ``model`` is a peft model (``get_peft_model`` on a :class:`HiFiPlusPlus`, or a :class:`Restorer` holding one)
    whose base weights are those of ``base`` (anything :func:`load_restorer` reads, e.g. ``"bundled:generalist"``
    or a run folder; checked), with the adapters ``lora_config`` (peft ``LoraConfig`` fields) makes (checked).
    ``dtype`` casts the adapter weights on disk; an existing folder is replaced as by :func:`save_separator`."""
    folder = Path(folder)
    with atomic_output_dir(folder, replaces=MODEL_FOLDER_FILES) as tmp:
        write_restorer_adapter_files(model, tmp, stem=stem, base=base, lora_config=lora_config, dtype=dtype,
                                     extra=extra)
    return folder


def write_restorer_adapter_files(model, folder, *, stem: str, base: str, lora_config: dict,
                                 dtype: torch.dtype | None = None, extra: dict | None = None) -> None:
    """Write an adapter folder's files into an existing (e.g. temporary) folder; see :func:`save_restorer_adapter`,
    which wraps this in an atomic folder."""
    from peft import PeftModel, get_peft_model_state_dict  # imported here: peft loads transformers (~5 s)

    where = "save_restorer_adapter"
    if isinstance(model, Restorer):
        model = model.model
    if not isinstance(model, PeftModel) or not isinstance(model.get_base_model(), HiFiPlusPlus):
        raise MSRError(f"{where}: expected a peft model on a HiFiPlusPlus (get_peft_model), got "
                       f"{type(model).__name__}")
    if not isinstance(lora_config, Mapping) or "base" in lora_config:
        raise MSRError(f"{where}: lora_config must be a mapping of peft LoraConfig fields, got {lora_config!r}")
    reference = load_restorer(base).model
    if _json_model_config(reference) != _json_model_config(model.get_base_model()):
        raise MSRError(f"{where}: the model is not built like its base {base} (their configs differ)")
    reference = _adapted(reference, lora_config, where)
    adapter = get_peft_model_state_dict(model)
    _check_adapter(adapter, get_peft_model_state_dict(reference), where)
    ours = model.state_dict()
    for key, value in reference.state_dict().items():  # the base weights, up to fp16 rounding of a bundled base
        if "lora_" not in key and not torch.allclose(ours[key].detach().cpu().float(), value, rtol=1e-3, atol=1e-6):
            raise MSRError(f"{where}: the model's base weights are not those of {base} ({key} differs)")
    folder = Path(folder)
    if not str(base).startswith("bundled:"):  # a path: stored relative to the adapter folder
        base = os.path.relpath(Path(base).resolve(), folder.resolve())
    config = _restorer_config(model.get_base_model(), stem=stem, extra=extra, where=where)
    config["lora"] = {"base": str(base), **lora_config}
    _write_files(folder, config, {ADAPTER_NAME: _tensors(adapter, dtype)}, where)


def _adapted(model: HiFiPlusPlus, lora_config: Mapping, where: str) -> nn.Module:
    """``model`` wrapped by peft with fresh LoRA adapters made by ``lora_config`` (``LoraConfig`` fields)."""
    from peft import LoraConfig, get_peft_model

    try:
        return get_peft_model(model, LoraConfig(**lora_config))
    except (TypeError, ValueError) as exc:  # unknown fields, no or unsupported target modules
        raise MSRError(f"{where}: bad LoRA config ({_one_line(exc)})") from None


def _check_adapter(adapter: Mapping, expected: Mapping, where: str) -> None:
    shapes = {k: tuple(v.shape) for k, v in adapter.items()}
    wanted = {k: tuple(v.shape) for k, v in expected.items()}
    if shapes != wanted:
        missing, unexpected = sorted(set(wanted) - set(shapes)), sorted(set(shapes) - set(wanted))
        misshapen = sorted(k for k in set(shapes) & set(wanted) if shapes[k] != wanted[k])
        raise MSRError(f"{where}: adapter weights do not fit the lora config ({len(missing)} missing {missing[:2]}, "
                       f"{len(unexpected)} unexpected {unexpected[:2]}, {len(misshapen)} misshapen {misshapen[:2]})")


def export_restorer(source, folder, *, dtype: torch.dtype = torch.float16) -> Path:
    """Write the restorer at ``source`` (anything :func:`load_restorer` reads; a LoRA expert comes out merged) as a
    full restorer folder with ``dtype`` weights. The config keeps the source's ``training`` record plus
    ``training.run``. Returns the folder."""
    restorer = load_restorer(source)
    training = dict(restorer.config.get("training", {}), run=str(source))
    return save_restorer(restorer.model, folder, stem=restorer.stem, dtype=dtype, extra={"training": training})


def bundled_restorers() -> list[str]:
    """Names of the restorers shipped in this checkout (``load_restorer("bundled:<name>")``)."""
    return _bundled_names(BUNDLED_RESTORERS_DIR)


def load_restorer(path=DEFAULT_RESTORER, *, device="cpu") -> Restorer:
    """Load a restorer: ``"bundled:<name>"`` (default ``bundled:generalist``), a training run folder or a restorer
    folder — full weights, or a LoRA adapter, which is applied to its base and merged.

    Returns a :class:`Restorer` in eval mode on ``device``, float32 whatever the weights' dtype on disk.
    """
    folder = _checkpoint_path(path, kind="restorer", bundled_dir=BUNDLED_RESTORERS_DIR, bundled=bundled_restorers)
    if not (folder / CONFIG_NAME).is_file():
        raise MSRError(f"{folder} is not a restorer checkpoint folder (no {CONFIG_NAME})")
    config = _read_config(folder, (RESTORER_MODEL_TYPE,))
    _check_model_size(HiFiPlusPlus, config.get("model"), folder / CONFIG_NAME)
    if "lora" in config:
        model = _load_adapter(folder, config)
    else:
        model = _build(config.get("model"), _read_weights(folder), folder, make=_load_hifipp)
    stem = _restorer_stem(config.get("stem"), str(folder / CONFIG_NAME))
    return Restorer(model, stem=stem, config=config).to(device).eval()


def _load_hifipp(model_config: dict, state_dict: Mapping) -> HiFiPlusPlus:
    model = HiFiPlusPlus(**model_config)
    model.load_state_dict(state_dict)  # strict: missing, unexpected or misshapen weights raise RuntimeError
    return model


def _load_adapter(folder: Path, config: dict) -> HiFiPlusPlus:
    """The base restorer of an adapter folder with the adapter merged into its weights."""
    where = str(folder / CONFIG_NAME)
    lora = config["lora"]
    if not isinstance(lora, Mapping) or not isinstance(lora.get("base"), str):
        raise MSRError(f"{where}: lora must be a mapping naming its base restorer, got {_short(lora)}")
    rank = lora.get("r", 8)  # peft's default
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= MAX_LORA_RANK:
        raise MSRError(f"{where}: lora.r must be an integer from 1 to {MAX_LORA_RANK}, got {_short(rank)}")
    base = lora["base"]
    model = load_restorer(base if base.startswith("bundled:") else folder / base).model
    if _json_model_config(model) != config.get("model"):
        raise MSRError(f"{where}: the base {base} is not the model this adapter was made for (their configs differ)")
    weights = folder / ADAPTER_NAME
    if not weights.is_file():
        raise MSRError(f"{folder}: no {ADAPTER_NAME} next to {CONFIG_NAME}")
    adapter = _read_safetensors(weights)
    from peft import get_peft_model_state_dict, set_peft_model_state_dict  # here: peft loads transformers (~5 s)

    peft_model = _adapted(model, {k: v for k, v in lora.items() if k != "base"}, where)
    _check_adapter(adapter, get_peft_model_state_dict(peft_model), where)
    set_peft_model_state_dict(peft_model, adapter)
    return peft_model.merge_and_unload().requires_grad_(True)
