"""Lesson support: the songs the lessons train on, and the lessons' training runs, reused across lessons.

- :func:`prepare_songs` renders (once) the preset's training and validation songs;
- :func:`lesson_run` trains a curriculum stage into ``data_dir()/runs/<preset>/<stage>`` or reuses the run there;
- :func:`warm_start` is the 4-stem separator the curriculum's later stages start from;
- :func:`restorer_run` trains a HiFi++ restorer (the generalist or a stem's expert) into
  ``data_dir()/runs/<preset>/restorer-<name>`` or reuses the run there, as :func:`lesson_run` does for separators;
- :func:`generalist_restorer` is the generalist the lessons' experts start from: the bundled one when this checkout
  ships it, else the lesson's own short run;
- :func:`save_lora_adapter` writes a LoRA expert run's adapter alone (what such an expert costs on disk);
- :func:`pipeline_restorers` is what lesson 06 restores with: the bundled restorers, else the lessons' generalist;
- :func:`bring_your_own_song` runs a student's file through the pipeline, or says in one line why it cannot.

Lessons: notebooks/03_bs_roformer.ipynb, notebooks/04_curriculum_lora.ipynb, notebooks/05_hifipp_restorer.ipynb,
notebooks/06_full_pipeline.ipynb
"""
from __future__ import annotations

import shutil
from pathlib import Path

from msr_lib.environment import data_dir
from msr_lib.presets import Preset, get_preset

__all__ = ["prepare_songs", "lesson_run", "warm_start", "BUNDLED_WARM_START", "restorer_run", "generalist_restorer",
           "save_lora_adapter", "BUNDLED_GENERALIST", "pipeline_restorers", "bring_your_own_song"]

#: the shipped 4-stem separator, trained far longer than a lesson can (docs/MODEL_CARD.md)
BUNDLED_WARM_START = "bundled:4stem"
#: the shipped generalist restorer (``load_restorer("bundled:generalist")``), once this checkout ships one
BUNDLED_GENERALIST = "bundled:generalist"


def _preset(preset: str | Preset | None) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def prepare_songs(preset: str | Preset | None = None, *, progress: bool = True) -> tuple[Path, Path]:
    """Render (once) the preset's training and validation songs under :func:`~msr_lib.environment.data_dir`;
    different seeds, so validation songs are never trained on. A preset that names its sound sources gets them
    installed first where it can (root + apt), else one clear error. Returns ``(train_dir, valid_dir)``."""
    from msr_lib.data.synth import require_sound_sources, synthesize_songs

    preset = _preset(preset)
    root = data_dir()
    train_dir, valid_dir = root / f"train_{preset.name}", root / f"valid_{preset.name}"
    seconds, sources = preset.synth["seconds"], preset.synth.get("sound_sources")
    if sources is not None:
        require_sound_sources(sources, install=True)
    synthesize_songs(train_dir, songs=preset.data["songs"], seconds=seconds, seed=1000, progress=progress,
                     skip_existing=True, sound_sources=sources)
    synthesize_songs(valid_dir, songs=preset.train["valid_songs"], seconds=seconds, seed=2000, progress=progress,
                     skip_existing=True, sound_sources=sources)
    return train_dir, valid_dir


def warm_start(preset: str | Preset | None = None, *, progress: bool = True) -> str | Path:
    """The 4-stem separator the LoRA stages start from: :data:`BUNDLED_WARM_START` when this checkout ships it,
    else the lesson's own ``pretrain`` run (trained first if it is missing)."""
    from msr_lib.models.checkpoint import bundled_separators

    if BUNDLED_WARM_START.split(":", 1)[1] in bundled_separators():
        return BUNDLED_WARM_START
    return lesson_run("pretrain", preset=preset, progress=progress)


def lesson_run(stage: str, *, preset: str | Preset | None = None, init=None, fresh: bool = False,
               name: str | None = None, **options) -> Path:
    """The run folder of ``stage`` for the lessons: ``data_dir()/runs/<preset>/<name or stage>``.

    A finished run is reused, an interrupted one resumed, a missing one trained (``fresh=True`` starts over).
    ``init`` defaults to what the stage starts from: the stage after the warm-up starts from :func:`warm_start`,
    a later one from the previous stage's lesson run (trained first if it is missing), so every lesson can run on
    its own. A run that started from another ``init`` than the one asked for is trained again. ``options`` go to
    :func:`~msr_lib.train.curriculum.train_separator` (e.g. ``steps``, ``on_log``, ``progress``).
    """
    from msr_lib.audio import read_json_object
    from msr_lib.models import load_torch_file
    from msr_lib.train import curriculum
    from msr_lib.train.loop import CHECKPOINT, RUN_INFO, TRAIN_STATE

    preset = _preset(preset)
    spec = curriculum.get_stage(stage)
    if init is None and spec.starts_from is not None:
        order = list(curriculum.STAGES)
        previous = curriculum.STAGES[order[order.index(stage) - 1]]
        progress = options.get("progress", True)
        init = (warm_start(preset, progress=progress) if previous.starts_from is None
                else lesson_run(previous.name, preset=preset, progress=progress))
    run = data_dir() / "runs" / preset.name / (name or stage)
    info = run / RUN_INFO
    recorded = read_json_object(info).get("init") if info.is_file() else None
    if run.exists() and (fresh or recorded != (str(init) if init is not None else None)):
        shutil.rmtree(run)  # asked for, or the run started from another warm start: train it again
    state_path = run / CHECKPOINT / TRAIN_STATE
    if state_path.is_file():
        state = load_torch_file(state_path)
        wanted = options.get("steps") or preset.train["stages"][stage]["steps"]
        if state["step"] >= wanted:
            return run
        curriculum.train_separator(stage, run, preset=preset, init=init, resume=True, **options)
        return run
    if run.exists():
        shutil.rmtree(run)  # started but no checkpoint yet: nothing to keep
    curriculum.train_separator(stage, run, preset=preset, init=init, **options)
    return run


def restorer_run(stem: str, *, preset: str | Preset | None = None, init=None, method: str = "full",
                 fresh: bool = False, name: str | None = None, **options) -> Path:
    """The run folder of a restorer for the lessons: ``data_dir()/runs/<preset>/restorer-<name>``.

    ``stem`` "all" is the generalist (default name ``generalist``); a stem's expert (default name the stem, with
    ``-lora`` for ``method="lora"``) starts from ``init``, by default :func:`generalist_restorer`. As
    :func:`lesson_run`: a finished run is reused, an interrupted one resumed, a missing one trained (``fresh=True``
    starts over), and a run recorded with another ``init``, ``method`` or stem is trained again. ``options`` go to
    :func:`~msr_lib.train.restorer.train_restorer` (e.g. ``steps``, ``on_log``, ``progress``).
    """
    from msr_lib.audio import read_json_object
    from msr_lib.models import load_torch_file
    from msr_lib.stems import canonical_stem
    from msr_lib.train import restorer
    from msr_lib.train.loop import CHECKPOINT, RUN_INFO, TRAIN_STATE

    preset = _preset(preset)
    stem = "all" if stem == "all" else canonical_stem(stem)
    if init is None and stem != "all":
        init = generalist_restorer(preset, progress=options.get("progress", True))
    default = "generalist" if stem == "all" else stem + ("-lora" if method == "lora" else "")
    run = data_dir() / "runs" / preset.name / f"restorer-{name or default}"
    info = run / RUN_INFO
    recorded = read_json_object(info) if info.is_file() else {}
    wanted = {"init": str(init) if init is not None else None, "method": method, "stem": stem}
    if run.exists() and (fresh or any(recorded.get(k, v) != v for k, v in wanted.items())):
        shutil.rmtree(run)  # asked for, or the run was made another way: train it again
    state_path = run / CHECKPOINT / TRAIN_STATE
    if state_path.is_file():
        state = load_torch_file(state_path)
        role = "generalist" if stem == "all" else "expert"
        if state["step"] >= (options.get("steps") or preset.restorer["train"]["roles"][role]["steps"]):
            return run
        restorer.train_restorer(stem, run, preset=preset, resume=True, **options)
        return run
    if run.exists():
        shutil.rmtree(run)  # started but no checkpoint yet: nothing to keep
    restorer.train_restorer(stem, run, preset=preset, init=init, method=method, **options)
    return run


def generalist_restorer(preset: str | Preset | None = None, *, progress: bool = True) -> str | Path:
    """The generalist restorer the lessons start from: :data:`BUNDLED_GENERALIST` when this checkout ships it,
    else the lesson's own short run, ``restorer_run("all")`` (trained first if it is missing)."""
    from msr_lib.models.checkpoint import bundled_restorers

    if BUNDLED_GENERALIST.split(":", 1)[1] in bundled_restorers():
        return BUNDLED_GENERALIST
    return restorer_run("all", preset=preset, progress=progress)


def save_lora_adapter(run, folder, *, dtype=None) -> Path:
    """Write the trained adapter of a LoRA expert run (``method="lora"``) as an adapter folder on the run's ``init``
    (:func:`~msr_lib.models.checkpoint.save_restorer_adapter`: ``config.json`` + ``lora_adapter.safetensors``).

    The run's own ``checkpoint/`` holds the adapter merged into a full restorer (it runs as fast as the base);
    this folder holds the adapter weights alone — what the expert costs on disk next to its generalist. They come
    from the run's resume state (the EMA weights, as in ``checkpoint/``). Returns the folder."""
    from msr_lib.audio import read_json_object
    from msr_lib.errors import MSRError
    from msr_lib.models.checkpoint import load_torch_file, save_restorer_adapter
    from msr_lib.train.curriculum import apply_lora
    from msr_lib.train.loop import CHECKPOINT, RUN_INFO, TRAIN_STATE
    from msr_lib.train.restorer import RESTORER_LORA, build_restorer, lora_targets

    run = Path(run)
    info_path, state_path = run / RUN_INFO, run / CHECKPOINT / TRAIN_STATE
    if not (info_path.is_file() and state_path.is_file()):
        raise MSRError(f"{run} is not a finished restorer run (no {RUN_INFO} or {CHECKPOINT}/{TRAIN_STATE})")
    info = read_json_object(info_path)
    if info.get("method") != "lora":
        raise MSRError(f"{run} trained its restorer with method {info.get('method')!r}, not LoRA: it has no adapter")
    generator = build_restorer(_preset(info.get("preset")), init=info["init"])
    settings = {**RESTORER_LORA, "target_modules": lora_targets(generator)}
    model = apply_lora(generator, **settings)
    model.load_state_dict(load_torch_file(state_path)["ema"])
    return save_restorer_adapter(model, folder, stem=info["stem"], base=info["init"], lora_config=settings,
                                 dtype=dtype)


def pipeline_restorers(preset: str | Preset | None = None, *, progress: bool = True):
    """The restorers lesson 06 runs (what :func:`msr_lib.pipeline.load_restorers` takes): ``"bundled"`` when this
    checkout ships a generalist (each stem's expert, else the generalist), else ``{"generalist": run}`` with the
    lessons' own generalist (:func:`generalist_restorer`). The ``quick`` preset's untrained models need none."""
    from msr_lib.models.checkpoint import bundled_restorers
    from msr_lib.pipeline import DEFAULT_RESTORERS, GENERALIST

    preset = _preset(preset)
    if preset.pipeline.get("models") == "untrained" or GENERALIST in bundled_restorers():
        return DEFAULT_RESTORERS
    return {GENERALIST: generalist_restorer(preset, progress=progress)}


def bring_your_own_song(path, out_dir=None, **options):
    """Restore the audio file at ``path`` into ``out_dir`` (default ``data_dir()/my_songs/<name>``) with
    :func:`msr_lib.pipeline.restore_file` (``options``: its keywords; any rate, mono or stereo, as it documents);
    returns the folder, or ``None`` after printing one line that says why not (no path given, no such file, a
    folder, an empty or unreadable file, NaN samples…). ``~`` and quotes around a pasted path are understood."""
    from msr_lib.audio import check_audio_path
    from msr_lib.errors import MSRError
    from msr_lib.pipeline import restore_file

    text = "" if path is None else str(path).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":  # "Copy as path" quotes it
        text = text[1:-1].strip()
    if not text:
        print("no song given: set MY_SONG to the path of an audio file (wav, flac, ogg, mp3, aiff) and run again")
        return None
    path = Path(text).expanduser()
    try:
        check_audio_path(path)  # before out_dir is named after it
        out_dir = Path(out_dir) if out_dir is not None else data_dir() / "my_songs" / path.stem
        restore_file(path, out_dir, **options)
    except MSRError as exc:
        print(f"cannot restore this song: {exc}")
        return None
    except OSError as exc:  # a path the system refuses (too long, no permission)
        print(f"cannot restore this song: {path}: {exc.strerror or exc}")
        return None
    return out_dir
