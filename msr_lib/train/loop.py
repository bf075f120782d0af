"""One plain PyTorch training loop for every model of the workbench (separator now, restorer later).

Read :func:`train` top to bottom: it is the whole algorithm. Per step:

1. take the batch for this step (a fixed function of seed and step, see :class:`StepBatches`),
2. forward + loss under bf16 autocast on CUDA (float32 on CPU), ``backward`` (with ``micro_batch_size``: in parts
   of that many items, each loss weighted by its share of the batch, so the gradients add up to the batch's; smaller
   tensors cost less CPU time per item, see benchmarks/bench_training_throughput.py),
3. clip the gradient norm, one AdamW step, one learning-rate schedule step (linear warm-up, cosine decay),
4. update the exponential moving average (EMA) of the weights,
5. log a JSON line; every ``validate_every`` steps (and before the first step, so a curve starts where the model
   started) score the EMA weights; every ``checkpoint_every`` steps write a checkpoint.

A run folder holds::

    RUN/log.jsonl                one JSON object per line: {"step", "loss", <loss parts>, "lr", "grad_norm",
                                 "seconds"} and, on validation steps, {"step", "valid/<name>": ...}
    RUN/checkpoint/config.json   the model to use (EMA weights), written by ``save_model``
    RUN/checkpoint/model.safetensors
    RUN/checkpoint/train_state.pt  raw weights, EMA, optimizer, schedule, RNG state and step — what ``resume`` needs,
                                 with the checksums of its own tensors and of the model files
    RUN/checkpoint.previous/     the checkpoint before (the same files)
    RUN/.lock                    held (``flock``) by the command training into the folder

``resume=True`` reloads ``train_state.pt`` and continues from its step; the batches, dropout masks and updates are
then the same as in an uninterrupted run (tested). Log lines after the checkpoint's step are dropped on resume.
A damaged latest checkpoint (a file missing, truncated or not matching its checksum) is reported in one line and
the run resumes from the previous one.

Interruptions (tests/test_interruptions.py): a new checkpoint is built in a temporary folder and then renamed into
place, the latest becoming the previous one, so a ``kill -9`` at any moment leaves at least one complete checkpoint.
SIGINT and SIGTERM during :func:`train` finish the step in progress, write its checkpoint and raise
``KeyboardInterrupt``. A second command on the same folder stops at once with one line (the folder is in use).

Data parallel: started under ``torchrun --nproc_per_node N`` (``WORLD_SIZE`` > 1) the loop joins a process group
(NCCL on CUDA, gloo on CPU), wraps the model in ``DistributedDataParallel`` and gives each rank its own slice of
every step's items; rank 0 alone validates, logs and writes.

Lesson: notebooks/03_bs_roformer.ipynb, notebooks/04_curriculum_lora.ipynb
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from msr_lib.audio import atomic_file, atomic_output_dir
from msr_lib.errors import MSRError

__all__ = [
    "TrainConfig", "TrainResult", "StepBatches", "train", "read_log", "trainable_parameters", "lr_at_step",
    "CHECKPOINT", "PREVIOUS_CHECKPOINT", "LOG", "TRAIN_STATE", "RUN_INFO", "recorded_run", "fixed_batches",
    "run_folder_lock",
]

CHECKPOINT = "checkpoint"
PREVIOUS_CHECKPOINT = "checkpoint.previous"  # the checkpoint before the latest, for a damaged latest one
LOCK = ".lock"
_STAGED_CHECKPOINT = f".{CHECKPOINT}.new"  # a complete new checkpoint before it is renamed into place
_DISCARDED_CHECKPOINT = f".{CHECKPOINT}.discarded"
LOG = "log.jsonl"
TRAIN_STATE = "train_state.pt"
RUN_INFO = "run.json"  # what a run trains and from what (written by the separator's and the restorer's trainers)


@dataclass
class TrainConfig:
    """Everything that decides a run (saved in the train state, so ``resume`` can check it did not change)."""

    steps: int = 1000
    schedule_steps: int | None = None  # the schedule's planned length (None: steps); a run may stop before its end
    batch_size: int = 4
    micro_batch_size: int | None = None  # forward/backward this many items at a time, gradients accumulated
    lr: float = 5e-4
    weight_decay: float = 0.01  # AdamW, on matrices only (not on norms' gains or biases)
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05  # the cosine decay ends at lr · min_lr_ratio
    ema_decay: float | None = 0.999  # None: no EMA (the raw weights are saved and validated)
    grad_clip: float | None = 5.0
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU
    validate_every: int = 100
    checkpoint_every: int = 100
    seed: int = 0
    num_workers: int = 0
    compile: bool = False  # torch.compile the training forward (CUDA: worth it for long runs)
    adversarial_from: int | None = None  # with a discriminator: the step its training and the GAN terms start
    max_skipped_steps: int = 20  # steps skipped for a non-finite loss or gradient before the run stops

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise MSRError(f"unknown training settings: {', '.join(unknown)}")
        return cls(**values)


@dataclass
class TrainResult:
    """What :func:`train` returns: the EMA (or raw) model, the step reached and the run folder. (An interrupted
    run returns nothing: the ``KeyboardInterrupt`` propagates after its checkpoint is written.)"""

    model: nn.Module
    step: int
    out_dir: Path


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total


def lr_at_step(config: TrainConfig, step: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based): linear warm-up to ``lr``, then cosine to
    ``lr · min_lr_ratio`` at the schedule's last step (``schedule_steps``, default ``steps``)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max(1, (config.schedule_steps or config.steps) - config.warmup_steps - 1)
    progress = min(1.0, (step - config.warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def recorded_run(out_dir, *, resume: bool, identity: dict) -> dict | None:
    """Check a run folder before training into it. With ``resume``: its recorded :data:`RUN_INFO`, which must
    agree with ``identity`` (e.g. ``{"stage": "pretrain"}``); without: ``None``, refusing a folder that already
    holds a checkpoint. Each refusal is one :class:`MSRError` line."""
    out_dir = Path(out_dir)
    info_path = out_dir / RUN_INFO
    if not resume:
        if (out_dir / CHECKPOINT).exists() or (out_dir / PREVIOUS_CHECKPOINT).exists():
            raise MSRError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out")
        return None
    if not info_path.is_file():
        raise MSRError(f"cannot resume: {info_path} does not exist (start without --resume)")
    from msr_lib.audio import read_json_object

    info = read_json_object(info_path)
    for key, value in identity.items():
        if info.get(key) != value:
            raise MSRError(f"cannot resume: {out_dir} holds a run of {key} {info.get(key)!r}, not {value!r}")
    return info


def fixed_batches(dataset, keys, batch_size: int) -> list[dict]:
    """The whole of ``dataset`` as batches of ``batch_size`` items, the tensors under ``keys`` stacked: fixed
    validation batches (each item is made once)."""
    items = [dataset[i] for i in range(len(dataset))]
    return [{k: torch.stack([item[k] for item in items[start:start + batch_size]]) for k in keys}
            for start in range(0, len(items), batch_size)]


class StepBatches(torch.utils.data.Sampler):
    """Batch sampler whose batch for step ``s`` on rank ``r`` is items ``(s·W + r)·B … + B − 1`` (mod the dataset
    length): a fixed function of the step, so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, dataset_length: int, batch_size: int, start_step: int, steps: int, rank: int = 0,
                 world_size: int = 1):
        self.n, self.batch_size, self.start, self.steps = dataset_length, batch_size, start_step, steps
        self.rank, self.world = rank, world_size

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start, self.steps):
            first = (step * self.world + self.rank) * self.batch_size
            yield [(first + i) % self.n for i in range(self.batch_size)]

    def __len__(self) -> int:
        return max(0, self.steps - self.start)


def read_log(run_dir) -> list[dict]:
    """The run's JSONL log as a list of dicts (a torn last line, e.g. after a kill, is skipped)."""
    path = Path(run_dir) / LOG
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


# ---------------------------------------------------------------- pieces of the loop

def _distributed() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; joins the process group when world > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), world


def _pick_device(device, local_rank: int) -> torch.device:
    """``auto``: this process's GPU (``cuda:LOCAL_RANK``) when there is one; otherwise as
    :func:`msr_lib.environment.resolve_device` (one-line errors for unknown or missing devices)."""
    from msr_lib.environment import resolve_device

    if device in (None, "auto") and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank}")
    return resolve_device(device)


def _make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise MSRError("nothing to train: every parameter is frozen")
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """ema ← d·ema + (1−d)·model for trainable weights, with d warmed up as min(decay, (1+step)/(10+step)) so that
    short runs are not dominated by the initial weights."""
    d = min(decay, (1 + step) / (10 + step))
    for e, p in zip(ema.parameters(), model.parameters()):
        if p.requires_grad:
            e.lerp_(p.detach(), 1.0 - d)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _write_checkpoint(out_dir: Path, *, save_model, ema_model, model, optimizer, config, step,
                      discriminator=None, d_optimizer=None, keep_latest: bool = True) -> None:
    """Write a checkpoint: the model files and the resume state into a complete folder, then
    :func:`_install_checkpoint` (``keep_latest=False``: the latest is damaged and is not kept as the previous)."""
    staged = out_dir / _STAGED_CHECKPOINT
    with atomic_output_dir(staged) as tmp:
        save_model(ema_model, tmp)
        state = {
            "step": step, "config": asdict(config), "model": model.state_dict(), "ema": ema_model.state_dict(),
            "optimizer": optimizer.state_dict(), "rng": _rng_state(),
        }
        if discriminator is not None:
            state["discriminator"] = discriminator.state_dict()
            state["discriminator_optimizer"] = d_optimizer.state_dict()
        state["files"] = {path.name: _file_checksum(path) for path in sorted(tmp.iterdir()) if path.is_file()}
        state["digest"] = _digest(state)
        torch.save(state, tmp / TRAIN_STATE)
    _install_checkpoint(out_dir, staged, keep_latest=keep_latest)


def _install_checkpoint(out_dir: Path, staged: Path, *, keep_latest: bool) -> None:
    """Rename the complete ``staged`` folder to ``RUN/checkpoint``, the latest becoming ``RUN/checkpoint.previous``.
    Every rename leaves a complete checkpoint in one of the two places (between the last two, in the previous)."""
    latest, previous, discarded = out_dir / CHECKPOINT, out_dir / PREVIOUS_CHECKPOINT, out_dir / _DISCARDED_CHECKPOINT
    shutil.rmtree(discarded, ignore_errors=True)
    if latest.exists():
        if keep_latest:
            if previous.exists():
                os.replace(previous, discarded)
            os.replace(latest, previous)
        else:
            os.replace(latest, discarded)
    os.replace(staged, latest)
    shutil.rmtree(discarded, ignore_errors=True)


def _remove_unfinished_checkpoints(out_dir: Path) -> None:
    """Remove the temporary checkpoint folders an interrupted write left (``RUN/.checkpoint.*``, and the
    temporary folders of those, ``RUN/..checkpoint.*``)."""
    for path in out_dir.iterdir():
        if path.name.startswith(".") and path.name.lstrip(".").startswith(f"{CHECKPOINT}.") and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def _file_checksum(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _digest(state) -> str:
    """SHA-256 of a train state's values (tensors by dtype, shape and bytes; everything else by ``repr``)."""
    digest = hashlib.sha256()

    def visit(value) -> None:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
        elif isinstance(value, dict):
            digest.update(b"{")
            for key, item in value.items():
                digest.update(repr(key).encode())
                visit(item)
            digest.update(b"}")
        elif isinstance(value, (list, tuple)):
            digest.update(b"[")
            for item in value:
                visit(item)
            digest.update(b"]")
        else:
            digest.update(repr(value).encode())

    visit(state)
    return digest.hexdigest()


def _read_checkpoint(folder: Path) -> dict:
    """The train state in ``folder``, checked against its digest and the model files against their checksums
    (checkpoints written before the checksums are taken as they load). A damaged checkpoint is an
    :class:`MSRError` naming the file."""
    path = folder / TRAIN_STATE
    if not path.is_file():
        raise MSRError(f"{path} does not exist")
    from msr_lib.models.checkpoint import load_torch_file

    state = load_torch_file(path)
    if not isinstance(state, dict) or not {"step", "config", "model", "ema", "optimizer", "rng"} <= set(state):
        raise MSRError(f"{path} is not a train state")
    digest = state.pop("digest", None)
    if digest is not None and digest != _digest(state):
        raise MSRError(f"{path} is damaged (its contents do not match their checksum)")
    for name, checksum in state.get("files", {}).items():
        if not (folder / name).is_file():
            raise MSRError(f"{folder / name} does not exist")
        if _file_checksum(folder / name) != checksum:
            raise MSRError(f"{folder / name} is damaged (it does not match its checksum)")
    return state


def _load_train_state(out_dir: Path, *, warn: bool) -> tuple[dict, bool]:
    """The state to resume from and whether it is the latest checkpoint's: the latest, or when it is damaged the
    previous one, with one warning line on stderr (``warn``). Neither usable: one :class:`MSRError` line."""
    latest, previous = out_dir / CHECKPOINT, out_dir / PREVIOUS_CHECKPOINT
    if not latest.exists() and not previous.exists():
        raise MSRError(f"cannot resume: {latest / TRAIN_STATE} does not exist (start without --resume)")
    try:
        return _read_checkpoint(latest), True
    except MSRError as damaged:
        problem = str(damaged)
    if not previous.exists():
        raise MSRError(f"cannot resume: {problem}, and there is no {PREVIOUS_CHECKPOINT}")
    try:
        state = _read_checkpoint(previous)
    except MSRError as also:
        raise MSRError(f"cannot resume: {problem}, and {also}") from None
    if warn:
        print(f"msr: warning: {problem}; resuming from {previous} at step {int(state['step'])}", file=sys.stderr)
    return state, False


def _truncate_log(out_dir: Path, step: int) -> None:
    rows = [row for row in read_log(out_dir) if row.get("step", 0) <= step]
    with atomic_file(out_dir / LOG) as tmp:
        Path(tmp).write_text("".join(json.dumps(row) + "\n" for row in rows))


def _append_log(out_dir: Path, row: dict) -> None:
    with open(out_dir / LOG, "a") as log:
        log.write(json.dumps(row) + "\n")


class _StopRequests:
    """While entered (in the main thread): SIGINT and SIGTERM set ``signalled`` instead of interrupting, so the
    loop can finish the step in progress; the previous handlers come back on exit. A signal a process ignores
    (a background job's SIGINT) stays ignored."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signalled = False  # this process got a signal
        self.agreed = False  # under DDP: some rank had one at the last all-reduce (the same on every rank)
        self._previous = {}

    def requested(self, world: int) -> bool:
        """Whether to stop after this step (under DDP the ranks' common decision)."""
        return self.signalled if world == 1 else self.agreed

    def _handle(self, signum, frame) -> None:
        self.signalled = True

    def __enter__(self) -> "_StopRequests":
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                if signal.getsignal(number) is not signal.SIG_IGN:
                    self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, signal.SIG_DFL if previous is None else previous)


@contextlib.contextmanager
def run_folder_lock(out_dir):
    """Hold ``RUN/.lock`` (an exclusive ``flock``) while a command writes the run folder ``out_dir``: a second
    command on the same folder stops with one :class:`MSRError` line instead of mixing its files in. Rank 0 alone
    locks (the other ranks of a torchrun write nothing); the kernel releases the lock however the process ends, so
    a killed run does not block its resume. Re-entrant in a process; a folder it had to create and that holds
    nothing else on exit is removed again. (No lock where there is no ``fcntl``.)"""
    out_dir = Path(out_dir)
    key = out_dir.resolve()
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    if fcntl is None or key in _LOCKED_RUNS or int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = out_dir / LOCK
    with open(lock, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MSRError(f"{out_dir} is in use by another msr command (it holds {lock}); wait for it to finish "
                           "or choose another --out") from None
        _LOCKED_RUNS.add(key)
        try:
            yield
        finally:
            _LOCKED_RUNS.discard(key)
            if created and [path.name for path in out_dir.iterdir()] == [LOCK]:
                lock.unlink()
                out_dir.rmdir()


_LOCKED_RUNS: set[Path] = set()  # the run folders this process holds


def _to_device(batch, device: torch.device):
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch.to(device, non_blocking=True) if isinstance(batch, torch.Tensor) else batch


# ---------------------------------------------------------------- the loop

def train(
    model: nn.Module,
    train_data: torch.utils.data.Dataset,
    *,
    config: TrainConfig,
    out_dir,
    loss_fn: Callable[[nn.Module, dict], tuple[torch.Tensor, dict]],
    save_model: Callable[[nn.Module, Path], None],
    validate_fn: Callable[[nn.Module], dict] | None = None,
    discriminator: nn.Module | None = None,
    discriminator_loss_fn: Callable[[nn.Module, nn.Module, dict], tuple[torch.Tensor, dict]] | None = None,
    resume: bool = False,
    device=None,
    progress: bool = True,
    describe: str = "train",
    on_log: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train ``model`` for ``config.steps`` optimizer steps; see the module docstring.

    ``loss_fn(model, batch) -> (loss, parts)`` computes the loss of one batch (``parts``: floats to log);
    ``save_model(model, folder)`` writes the model files into a folder; ``validate_fn(model) -> {name: float}``
    scores the EMA model (called on rank 0 in eval mode under ``torch.no_grad``, at step 0 of a fresh run, every
    ``validate_every`` steps and at the last step). ``on_log(row)`` sees every log
    row as it is written (e.g. a live loss plot in a notebook). Only parameters with
    ``requires_grad`` are trained, so freezing is decided by the caller (e.g. LoRA stages).
    A ``KeyboardInterrupt`` writes a checkpoint at the last finished step before it propagates.

    GAN training (the restorer): with a ``discriminator``, each step from ``config.adversarial_from`` on first
    updates it — ``discriminator_loss_fn(discriminator, model, batch) -> (loss, parts)``, its own AdamW on the same
    schedule, its parts logged with a ``d_`` prefix — and then the model, with
    ``loss_fn(model, batch, discriminator)`` (``None`` before ``adversarial_from``: reconstruction only). The
    discriminator and its optimizer are checkpointed and resumed with the rest; the EMA and the saved model files
    are the model's alone.

    A step whose loss or gradient is not finite is skipped (no update, ``"skipped": 1`` in its log row) and
    counted; past ``config.max_skipped_steps`` the run stops with one line.
    """
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    rank, local_rank, world = _distributed()
    device = _pick_device(device, local_rank)
    if config.steps < 1 or config.batch_size < 1:
        raise MSRError("steps and batch_size must be at least 1")
    micro = config.micro_batch_size or config.batch_size
    if not 1 <= micro <= config.batch_size:
        raise MSRError(f"micro_batch_size must be between 1 and batch_size ({config.batch_size}), got {micro}")
    torch.manual_seed(config.seed)
    random.seed(config.seed)

    if (discriminator is None) != (discriminator_loss_fn is None):
        raise MSRError("a discriminator needs a discriminator_loss_fn, and the other way round")
    with run_folder_lock(out_dir), _StopRequests() as stop:
        model.to(device)
        ema_model = copy.deepcopy(model).requires_grad_(False) if config.ema_decay else model
        optimizer = _make_optimizer(model, config)
        d_optimizer = None
        if discriminator is not None:
            discriminator.to(device)
            d_optimizer = _make_optimizer(discriminator, config)
        step = 0
        latest_usable = True  # False after resuming from the previous checkpoint: the damaged latest is not kept
        if resume:
            state, latest_usable = _load_train_state(out_dir, warn=rank == 0)
            saved = asdict(TrainConfig.from_dict(state["config"]))
            changed = [k for k, v in asdict(config).items() if k != "steps" and saved[k] != v]  # steps may grow
            if changed:
                raise MSRError(f"cannot resume: settings changed since the checkpoint ({', '.join(changed)})")
            model.load_state_dict(state["model"])
            if ema_model is not model:
                ema_model.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
            if discriminator is not None:
                if "discriminator" not in state:
                    raise MSRError("cannot resume: the checkpoint has no discriminator (it was not a GAN run)")
                discriminator.load_state_dict(state["discriminator"])
                d_optimizer.load_state_dict(state["discriminator_optimizer"])
            step = int(state["step"])
            _set_rng_state(state["rng"])
            if rank == 0:
                _truncate_log(out_dir, step)
        elif rank == 0:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / LOG).write_text("")  # a fresh run starts a fresh log
        if rank == 0:
            _remove_unfinished_checkpoints(out_dir)

        def data_parallel(module: nn.Module | None) -> nn.Module | None:
            if module is None or world == 1:
                return module
            device_ids = [local_rank] if device.type == "cuda" else None
            return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)

        train_model = data_parallel(model)
        forward_model = torch.compile(train_model) if config.compile else train_model
        d_train_model = data_parallel(discriminator)
        loader = torch.utils.data.DataLoader(
            train_data, batch_sampler=StepBatches(len(train_data), config.batch_size, step, config.steps, rank, world),
            num_workers=config.num_workers, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(config.seed),  # keeps the global RNG (dropout) untouched
        )
        amp = config.amp and device.type == "cuda"
        skipped = 0
        trainable, total = trainable_parameters(model)
        bar = tqdm(total=config.steps, initial=step, desc=describe, unit="step", disable=not progress or rank > 0,
                   postfix={"trainable": f"{trainable:,}/{total:,}"})

        def log_validation() -> None:
            ema_model.eval()
            with torch.no_grad():
                scores = validate_fn(ema_model)
            valid_row = {"step": step, **{f"valid/{k}": v for k, v in scores.items()}}
            _append_log(out_dir, valid_row)
            if on_log is not None:
                on_log(valid_row)

        started = time.perf_counter()
        saved_step, in_step = step, False  # the last checkpoint's step; whether the weights are between two steps
        try:
            if validate_fn is not None and rank == 0 and step == 0:
                log_validation()
            for batch in loader:
                in_step = True
                model.train()
                lr = lr_at_step(config, step)
                batch = _to_device(batch, device)
                adversarial = discriminator is not None and config.adversarial_from is not None \
                    and step >= config.adversarial_from
                row = {"step": step + 1}
                if adversarial:
                    # 0. the discriminator's step (GAN training only)
                    discriminator.train()
                    d_loss, d_parts, d_norm = _update(
                        d_train_model, d_optimizer, batch, lambda d, piece: discriminator_loss_fn(d, model, piece),
                        lr=lr, config=config, micro=micro, amp=amp, device=device, world=world, stop=stop)
                    row.update({"d_loss": d_loss, **{f"d_{k}": v for k, v in d_parts.items()}, "d_grad_norm": d_norm})
                # 1-3. forward, backward, clip, update (the discriminator, when there is one, frozen meanwhile)
                generator_loss = loss_fn
                if discriminator is not None:
                    critic = discriminator if adversarial else None
                    generator_loss = lambda m, piece: loss_fn(m, piece, critic)  # noqa: E731
                    discriminator.requires_grad_(False)
                loss, parts, grad_norm = _update(forward_model, optimizer, batch, generator_loss, lr=lr, config=config,
                                                 micro=micro, amp=amp, device=device, world=world, stop=stop)
                if discriminator is not None:
                    discriminator.requires_grad_(True)
                step += 1
                checked = (loss, grad_norm, row.get("d_loss", 0.0), row.get("d_grad_norm", 0.0))
                if not all(math.isfinite(v) for v in checked):
                    skipped += 1
                    row["skipped"] = 1
                    if skipped > config.max_skipped_steps:
                        raise MSRError(f"{skipped} steps had a non-finite loss or gradient (the last at step {step}); "
                                       "lower the learning rate")
                # 4. EMA
                elif ema_model is not model:
                    _update_ema(ema_model, model, config.ema_decay, step)
                in_step = False
                # 5. log, validate, checkpoint
                row.update({"loss": loss, **parts, "lr": lr, "grad_norm": grad_norm,
                            "seconds": round(time.perf_counter() - started, 3)})
                if getattr(train_data, "skipped_files", 0):  # unreadable files the dataset skipped so far
                    row["skipped_files"] = int(train_data.skipped_files)
                if rank == 0:
                    _append_log(out_dir, row)
                    if on_log is not None:
                        on_log(row)
                    bar.set_postfix(loss=f"{row['loss']:.3f}", lr=f"{row['lr']:.1e}")
                bar.update(1)
                validating = step % config.validate_every == 0 or step == config.steps
                if validate_fn is not None and rank == 0 and validating:
                    log_validation()
                if rank == 0 and (step % config.checkpoint_every == 0 or step == config.steps):
                    _write_checkpoint(out_dir, save_model=save_model, ema_model=ema_model, model=model,
                                      optimizer=optimizer, config=config, step=step,
                                      discriminator=discriminator, d_optimizer=d_optimizer, keep_latest=latest_usable)
                    latest_usable, saved_step = True, step
                _barrier(world)
                if stop.requested(world):
                    raise KeyboardInterrupt(f"stopped after step {step}")
        except MSRError as exc:
            raise _one_line(exc) from None
        except KeyboardInterrupt:
            if rank == 0 and step > saved_step and not in_step:  # mid-step the weights are not those of a step
                _write_checkpoint(out_dir, save_model=save_model, ema_model=ema_model, model=model,
                                  optimizer=optimizer, config=config, step=step,
                                  discriminator=discriminator, d_optimizer=d_optimizer, keep_latest=latest_usable)
            if world > 1 and stop.agreed:
                _barrier(world)  # the other ranks wait for rank 0's checkpoint: torchrun ends them all once one exits
            raise
        finally:
            bar.close()
        ema_model.eval()
        return TrainResult(model=ema_model, step=step, out_dir=out_dir)


def _one_line(exc: MSRError) -> MSRError:
    """``exc`` as one line: a DataLoader worker's error reaches the main process as the worker's whole traceback,
    whose last line is ``msr_lib.errors.MSRError: <the message>``."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if len(lines) <= 1:
        return exc
    last = lines[-1]
    return type(exc)(last.split(": ", 1)[1] if last.startswith("msr_lib.errors.") and ": " in last else last)


def _update(model, optimizer, batch, loss_fn, *, lr: float, config: TrainConfig, micro: int, amp: bool,
            device: torch.device, world: int, stop: "_StopRequests") -> tuple[float, dict, float]:
    """One optimizer step of ``model`` on ``batch``: zero, forward/backward (:func:`_forward_backward`), clip, and
    update unless the loss or the gradient is not finite (then the weights stay as they were). Returns the loss
    (averaged over ranks), its parts and the gradient norm before clipping. Under DDP the loss's all-reduce also
    tells every rank whether one of them was signalled (``stop.agreed``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    loss, parts = _forward_backward(model, batch, loss_fn, micro=micro, batch_size=config.batch_size, amp=amp,
                                    device=device)
    if world > 1:
        loss, signalled = _mean_over_ranks(loss, device, stop.signalled)  # every rank takes the same decisions
        stop.agreed = stop.agreed or signalled
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = float(torch.nn.utils.clip_grad_norm_(params, config.grad_clip or float("inf")))
    if math.isfinite(loss) and math.isfinite(grad_norm):
        optimizer.step()
    return loss, parts, grad_norm


def _forward_backward(model, batch, loss_fn, *, micro: int, batch_size: int, amp: bool,
                      device: torch.device) -> tuple[float, dict]:
    """Loss and gradients of one batch, ``micro`` items at a time: each part's loss is weighted by its share of the
    batch before ``backward`` (gradients add up). Returns the weighted loss and loss parts. Under DDP, gradients are
    synchronised on the last part only."""
    pieces = [(batch, 1.0)]
    if micro < batch_size:  # batches are dicts of tensors with the items along dimension 0
        size = next(v for v in batch.values() if isinstance(v, torch.Tensor)).shape[0]
        pieces = [({k: v[first:first + micro] if isinstance(v, torch.Tensor) else v for k, v in batch.items()},
                   (min(first + micro, size) - first) / size) for first in range(0, size, micro)]
    loss_sum, parts_sum = 0.0, {}
    for index, (piece, share) in enumerate(pieces):
        last = index == len(pieces) - 1
        with contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, parts = loss_fn(model, piece)
            (loss * share if share < 1 else loss).backward()
        loss_sum += float(loss.detach()) * share
        for name, value in parts.items():
            parts_sum[name] = parts_sum.get(name, 0.0) + value * share
    return loss_sum, parts_sum


def _mean_over_ranks(value: float, device: torch.device, flag: bool) -> tuple[float, bool]:
    """The mean of ``value`` over the ranks and whether any rank's ``flag`` is set (one all-reduce)."""
    import torch.distributed as dist

    tensor = torch.tensor([value, float(flag)], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor[0]) / dist.get_world_size(), bool(tensor[1] > 0)


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
