"""Separator checkpoints: save ours (a folder with ``config.json`` + ``model.safetensors``), load ours or MSST's.

Our format (``format_version`` 1)::

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

Every failure a user can cause (missing or corrupt file, unknown ``model_type``, weights that do not fit the config)
raises :class:`~msr_lib.errors.MSRError` with one line.

Lesson: notebooks/03_bs_roformer.ipynb
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from msr_lib.audio import SAMPLE_RATE, _umask, atomic_output_dir
from msr_lib.errors import MSRError
from msr_lib.models.bs_roformer import BSRoformer, _unwrap_state_dict, load_msst
from msr_lib.stems import canonical_stem

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"  # <name>/config.json + model.safetensors (fp16)
DEFAULT_SEPARATOR = "bundled:8stem"
RUN_CHECKPOINT = "checkpoint"  # a training run keeps its latest checkpoint folder here
MODEL_TYPES = ("bs_roformer",)
_RESERVED = ("model_type", "model", "stems", "sample_rate", "format_version")
_TORCH_SUFFIXES = (".ckpt", ".pt", ".pth")
_YAML_SUFFIXES = (".yaml", ".yml")


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
    weights on disk; loading casts them back to the model's float32. An existing folder is replaced only after the
    new one is complete.
    """
    folder = Path(folder)
    with atomic_output_dir(folder) as tmp:
        write_separator_files(model, tmp, stems=stems, extra=extra, dtype=dtype)
    return folder


def write_separator_files(
    model: nn.Module, folder, *, stems, extra: dict | None = None, dtype: torch.dtype | None = None
) -> None:
    """Write ``config.json`` + ``model.safetensors`` into an existing (e.g. temporary) folder; see
    :func:`save_separator`, which wraps this in an atomic folder."""
    if isinstance(model, Separator):
        model = model.model
    if not isinstance(model, BSRoformer):
        raise MSRError(f"save_separator supports BSRoformer models only, got {type(model).__name__}")
    stems = _canonical_stems(stems, model.num_stems, "save_separator")
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise MSRError(f"save_separator: extra may not override {', '.join(clash)}")
    model_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in model.config.items()}
    config = {
        "model_type": "bs_roformer", "model": model_config, "stems": stems, "sample_rate": SAMPLE_RATE,
        "format_version": FORMAT_VERSION, **extra,
    }
    try:
        config_text = json.dumps(config, indent=2) + "\n"
    except (TypeError, ValueError) as exc:
        raise MSRError(f"save_separator: config is not JSON-serialisable ({_one_line(exc)})") from None
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        tensors[key] = value.cpu().contiguous().clone()  # clone: no shared storage (safetensors refuses it)
    folder = Path(folder)
    (folder / CONFIG_NAME).write_text(config_text)
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    os.chmod(folder / WEIGHTS_NAME, 0o666 & ~_umask())  # safetensors writes 0600


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
    if not BUNDLED_DIR.is_dir():
        return []
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def load_separator(path=DEFAULT_SEPARATOR, *, device="cpu") -> Separator:
    """Load a separator: ``"bundled:<name>"`` (shipped with the workbench; default ``bundled:8stem``), a training
    run folder, our checkpoint folder (or its ``config.json``) or an MSST checkpoint file + YAML.

    Returns a :class:`Separator` in eval mode on ``device``.
    """
    if isinstance(path, str) and path.startswith("bundled:"):
        name = path.split(":", 1)[1]
        available = bundled_separators()
        if name not in available:
            raise MSRError(f"no bundled separator {name!r} in this checkout (available: "
                           f"{', '.join(available) or 'none yet'}); train one or pass a checkpoint path")
        path = BUNDLED_DIR / name
    path = Path(path)
    if not path.exists():
        raise MSRError(f"no such checkpoint: {path}")
    if path.is_dir() and not (path / CONFIG_NAME).is_file() and (path / RUN_CHECKPOINT / CONFIG_NAME).is_file():
        path = path / RUN_CHECKPOINT  # a training run folder (msr train): its latest checkpoint
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


def _build(model_config, state_dict: Mapping, where) -> BSRoformer:
    if not isinstance(model_config, Mapping):
        raise MSRError(f"{where}: the model config must be a mapping, got {type(model_config).__name__}")
    if isinstance(state_dict, Mapping):
        state_dict = _unwrap_state_dict(state_dict)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise MSRError(f"{where}: the checkpoint does not hold a state dict of tensors")
    try:
        return load_msst(dict(model_config), state_dict)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise MSRError(f"{where}: weights do not fit the config ({_one_line(exc)})") from None


def _load_folder(folder: Path) -> Separator:
    config_path = folder / CONFIG_NAME
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MSRError(f"cannot read {config_path}: {_one_line(exc)}") from None
    if not isinstance(config, dict):
        raise MSRError(f"{config_path}: expected a JSON object")
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise MSRError(f"{config_path}: unknown model_type {model_type!r} (supported: {', '.join(MODEL_TYPES)})")
    version = config.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise MSRError(f"{config_path}: unsupported format_version {version!r} (this library reads up to "
                       f"{FORMAT_VERSION})")
    weight_files = [folder / WEIGHTS_NAME] if (folder / WEIGHTS_NAME).is_file() else sorted(
        folder.glob("model*.safetensors"))
    if not weight_files:
        raise MSRError(f"{folder}: no model*.safetensors weights next to {CONFIG_NAME}")
    state_dict: dict[str, torch.Tensor] = {}
    for file in weight_files:  # one file normally; several shards are merged
        state_dict.update(_read_safetensors(file))
    model = _build(config.get("model"), state_dict, folder)
    stems = _canonical_stems(config.get("stems"), model.num_stems, str(config_path))
    return Separator(model, stems, config.get("sample_rate", SAMPLE_RATE), config)


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
        config = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
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
    if ckpt.suffix.lower() == ".safetensors":
        state_dict = _read_safetensors(ckpt)
    else:
        try:
            state_dict = torch.load(str(ckpt), map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt zip, truncated file, or pickled objects weights_only refuses
            raise MSRError(f"cannot read checkpoint {ckpt}: {_one_line(exc)}") from None
    model = _build(config["model"], state_dict, ckpt)
    stems = _canonical_stems(_msst_stems(config, yaml_path), model.num_stems, str(yaml_path))
    audio = config.get("audio") if isinstance(config.get("audio"), dict) else {}
    return Separator(model, stems, audio.get("sample_rate", SAMPLE_RATE), config)
