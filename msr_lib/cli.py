"""The ``msr`` command: a thin layer over the library. Bad input, and an output the file system refuses (read-only,
full, no permission), → one ``msr: error: …`` line and exit status 2; never a traceback. How audio inputs are
converted: :data:`AUDIO_INPUTS` (the epilog of ``msr --help``).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from msr_lib.errors import MSRError

AUDIO_INPUTS = """\
audio inputs (every command):
  converted: any sample rate from 1 kHz to 768 kHz (resampled with soxr to 44.1 kHz where a model or
  the mastering chain needs it; separate/restore write stems back at the input's rate and length);
  mono (processed as dual mono; separate/restore write mono stems); more than two channels (folded to
  stereo: even channels left, odd right); 8/16/24/32-bit PCM and float files (read as float32);
  sub-second and long inputs (separate/restore stream them block by block); stems of one song with
  different lengths (zero-padded to the longest); several files of one stem (summed).
  refused in one line: missing, empty, unreadable and truncated files, NaN or infinite samples, a signal
  shorter than one sample at the rate it is resampled to, two mix files in one song folder, a file in a song
  folder that names no stem (degrade, evaluate --baselines; evaluate lists such estimates as extra).
  outputs: never NaN/inf; separate/restore clip samples beyond [-1, 1] and warn; an existing output
  folder holding other files is refused; a second command writing the same folder at once is refused."""



def _number(kind, *, low: float, low_included: bool = True):
    """An argparse ``type``: ``kind`` (int or float) finite and ≥ ``low`` (> with ``low_included=False``); else
    argparse's one-line usage error."""
    import math

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (value == low and not low_included):
            raise argparse.ArgumentTypeError(f"must be {'≥' if low_included else '>'} {low:g}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


POSITIVE_INT = _number(int, low=1)
NON_NEGATIVE_INT = _number(int, low=0)
POSITIVE_FLOAT = _number(float, low=0, low_included=False)

# ---------------------------------------------------------------- msr synth
def _add_synth(sub) -> None:
    p = sub.add_parser("synth", help="render offline multitrack songs (one FLAC per stem + mix + song.json)")
    p.add_argument("--songs", type=int, default=4, help="number of songs (default 4)")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each song in seconds, at most 600 (default 20)")
    p.add_argument("--seed", type=int, default=0, help="base seed; song i uses a seed derived from it (default 0)")
    p.add_argument("--out", required=True, help="output folder; songs go to OUT/<song_id>/")
    p.add_argument("--source", choices=["procedural", "corpus", "mixed"], default="procedural",
                   help="note material: procedural arrangements, music21 corpus pieces, or both (default procedural)")
    p.add_argument("--soundfont", default=None,
                   help="pin one General-MIDI .sf2/.sf3 in place of every sampled GM set (default: varied sources)")
    p.add_argument("--sound-sources", default=None,
                   help="comma-separated sound sources to draw from (default: every installed one; see "
                        "msr_lib.data.synth.SOUND_SOURCES)")
    p.add_argument("--install-sources", action="store_true",
                   help="install the Debian packages of missing --sound-sources (needs root and apt)")
    p.add_argument("--workers", type=int, default=None, help="parallel render processes (default: CPU count)")
    p.add_argument("--skip-existing", action="store_true",
                   help="keep songs a previous run already wrote with the same seed and length (resume)")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args) -> int:
    from msr_lib.data.synth import require_sound_sources, synthesize_songs

    names = [n.strip() for n in args.sound_sources.split(",") if n.strip()] if args.sound_sources else None
    if names and args.install_sources:
        require_sound_sources(names, install=True)
    paths = synthesize_songs(args.out, songs=args.songs, seconds=args.seconds, seed=args.seed, source=args.source,
                             soundfont=args.soundfont, sound_sources=names, workers=args.workers, progress=True,
                             skip_existing=args.skip_existing)
    print(f"wrote {len(paths)} songs to {args.out}")
    return 0


# ---------------------------------------------------------------- msr degrade
def _add_degrade(sub) -> None:
    p = sub.add_parser("degrade", help="mix and master a song folder into a 'finished song' + a JSON record")
    p.add_argument("song_dir", help="a song folder holding <stem>.flac/.wav files")
    p.add_argument("--out", required=True,
                   help="output folder for mastered_mix.flac and degradation.json (written atomically; an existing "
                        "folder holding other files is refused)")
    p.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    p.add_argument("--target-lufs", type=float, default=-14.0,
                   help="loudness target of the master, -60 to 0 LUFS (default -14)")
    p.add_argument("--no-codec", action="store_true", help="skip the lossy MP3 stage")
    p.set_defaults(func=_cmd_degrade)


def _cmd_degrade(args) -> int:
    from msr_lib.degrade import degrade_song_folder

    out = degrade_song_folder(args.song_dir, args.out, seed=args.seed, target_lufs=args.target_lufs,
                              codec=not args.no_codec)
    print(f"wrote {out}")
    return 0


# ---------------------------------------------------------------- msr evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="score estimated stems against references (per-stem table + JSON), "
                                        "or the oracle baselines of a set of songs")
    p.add_argument("--estimates", default=None, help="folder of estimates: <dir>/<song>/<stem>.wav or <dir>/<stem>.wav")
    p.add_argument("--references", required=True,
                   help="folder of clean references in the same layout (with --baselines: msr synth song folders)")
    p.add_argument("--baselines", action="store_true",
                   help="score 'mixture as estimate', ideal ratio mask and ideal binary mask on a mastered mix of "
                        "each reference song (floor and ceiling rows) instead of --estimates")
    p.add_argument("--seed", type=int, default=0, help="with --baselines: seed of the mastering draws (default 0)")
    p.add_argument("--no-codec", action="store_true", help="with --baselines: skip the lossy MP3 stage")
    p.add_argument("--metrics", default=",".join(("multi_mel_snr", "si_snr")),
                   help="comma-separated metric names (default multi_mel_snr,si_snr)")
    p.add_argument("--json", default=None, help="also write per-song, per-stem values and the means to this file")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    from msr_lib.evaluate import resolve_metrics, write_json_atomic

    metrics = resolve_metrics(args.metrics)
    if args.json is not None and Path(args.json).is_dir():
        raise MSRError(f"--json {args.json}: is a folder, expected a file path")
    if args.baselines:
        from msr_lib.baselines import BASELINE_TITLES, oracle_rows

        if args.estimates is not None:
            raise MSRError("--baselines computes its own estimates; leave out --estimates")
        rows = oracle_rows(args.references, seed=args.seed, metrics=metrics, codec=not args.no_codec, progress=None)
        print("\n\n".join(result.table(BASELINE_TITLES[name]) for name, result in rows.items()))
        if args.json is not None:
            write_json_atomic(args.json, {name: result.to_dict() for name, result in rows.items()})
    else:
        from msr_lib.evaluate import evaluate

        if args.estimates is None:
            raise MSRError("give --estimates DIR (or --baselines)")
        result = evaluate(args.estimates, args.references, metrics=metrics, progress=None)
        print(result.table())
        if args.json is not None:
            result.to_json(args.json)
    if args.json is not None:
        print(f"wrote {args.json}")
    return 0


# ---------------------------------------------------------------- msr separate
def _add_separate(sub) -> None:
    p = sub.add_parser("separate", help="split a song into stems with a separator (one audio file per stem)")
    p.add_argument("input", help="the song: an audio file (any rate, any channels); stems have its rate, length and "
                                 "channels (more than two folded to stereo), samples clipped to [-1, 1]")
    p.add_argument("--out", required=True,
                   help="output folder for <stem>.wav/.flac and restore.json (written atomically; an existing "
                        "folder holding other files is refused, and so is a second command writing it at once)")
    p.add_argument("--model", default="bundled:8stem",
                   help="separator checkpoint folder or MSST checkpoint file (default bundled:8stem)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto: CUDA when available)")
    p.add_argument("--chunk-seconds", type=float, default=None,
                   help="length of each inference chunk in seconds (default: the checkpoint's, else 8)")
    p.add_argument("--overlap", type=float, default=0.25, help="fraction of a chunk shared with the next (default 0.25)")
    p.add_argument("--batch-size", type=int, default=1, help="chunks per forward pass (default 1)")
    p.add_argument("--format", choices=["wav", "flac"], default="wav",
                   help="wav (32-bit float) or flac (24-bit PCM) (default wav)")
    p.set_defaults(func=_cmd_separate)


def _cmd_separate(args) -> int:
    from msr_lib.environment import resolve_device
    from msr_lib.models import load_separator
    from msr_lib.separate import separate_file

    from msr_lib.audio import check_output_dir, open_audio
    from msr_lib.pipeline import output_names

    open_audio(args.input).close()  # before loading the model, which can take a while
    check_output_dir(args.out, output_names())
    device = resolve_device(args.device)
    separator = load_separator(args.model, device=device)
    paths = separate_file(args.input, args.out, separator, output_format=args.format, device=device,
                          chunk_seconds=args.chunk_seconds, overlap=args.overlap, batch_size=args.batch_size)
    print(f"wrote {len(paths)} stems ({', '.join(paths)}) to {args.out}")
    _warn_clipped(args.out)
    return 0


def _warn_clipped(out_dir) -> None:
    """One ``msr: warning:`` line if the pipeline clipped samples of the stems in ``out_dir`` (its restore.json)."""
    import json

    from msr_lib.pipeline import RECORD_NAME

    clipped = json.loads((Path(out_dir) / RECORD_NAME).read_text()).get("clipped_samples", {})
    if any(clipped.values()):
        counts = ", ".join(f"{stem} {n}" for stem, n in clipped.items() if n)
        print(f"msr: warning: samples beyond ±1 clipped in {out_dir} ({counts}); lower the input's level",
              file=sys.stderr)


# ---------------------------------------------------------------- msr restore
def _add_restore(sub) -> None:
    from msr_lib.presets import PRESETS

    p = sub.add_parser("restore", help="the full pipeline: separate a song and restore every stem (one file each)")
    p.add_argument("input", help="an audio file (any rate, any channels; stems have its rate, length and channels, "
                                 "more than two folded to stereo, samples clipped to [-1, 1]), a song folder, or a "
                                 "folder of them")
    p.add_argument("--out", required=True,
                   help="output folder for <stem>.wav/.flac and restore.json (a folder of inputs: one subfolder per "
                        "song); each song's folder is written under a temporary name and moved into place when "
                        "done; an existing folder holding other files is refused, and so is a second command "
                        "writing it at once")
    p.add_argument("--separator", default=None, help="separator checkpoint (default: the preset's, bundled:8stem)")
    p.add_argument("--restorers", default="bundled",
                   help="bundled (each stem's shipped expert, else the generalist), one restorer for every stem, "
                        "or a folder of restorer folders named by stem (default bundled)")
    p.add_argument("--no-restore", action="store_true", help="separate only")
    p.add_argument("--stems", default=None, help="comma-separated stems to write (default all)")
    p.add_argument("--keep-separated", action="store_true",
                   help="also write the separator's stems, before restoration, to OUT/separated/")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto: CUDA when available)")
    p.add_argument("--chunk-seconds", type=float, default=None,
                   help="separator chunk in seconds (default: the checkpoint's, else 8)")
    p.add_argument("--overlap", type=float, default=None, help="fraction of a chunk shared with the next (default "
                                                                "the preset's, 0.25)")
    p.add_argument("--batch-size", type=int, default=None, help="chunks per forward pass (default the preset's)")
    p.add_argument("--format", choices=["wav", "flac"], default="wav",
                   help="wav (32-bit float) or flac (24-bit PCM) (default wav)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="sizes and defaults; quick runs tiny untrained models (smoke checks) (default $MSR_PRESET "
                        "or laptop)")
    p.set_defaults(func=_cmd_restore)


def _cmd_restore(args) -> int:
    from msr_lib.audio import check_output_dir, open_audio
    from msr_lib.environment import resolve_device
    from msr_lib.pipeline import (
        load_restorers, output_names, pipeline_models, restore_file, selected_stems, song_inputs,
    )

    inputs = song_inputs(args.input, args.out)
    for song, out in inputs:  # every input and output checked before the models load, which can take a while
        open_audio(song).close()
        check_output_dir(out, output_names())
    device = resolve_device(args.device)
    restorers = None if args.no_restore else args.restorers
    separator, restorers = pipeline_models(args.preset, separator=args.separator, restorers=restorers,
                                           device=device)
    stems = selected_stems(args.stems, separator)
    restorers = load_restorers(restorers, stems, device=device)  # once for every song
    for number, (song, out) in enumerate(inputs, 1):
        paths = restore_file(song, out, separator=separator, restorers=restorers, stems=stems,
                             keep_separated=args.keep_separated, output_format=args.format, device=device,
                             chunk_seconds=args.chunk_seconds, overlap=args.overlap, batch_size=args.batch_size,
                             preset=args.preset)
        count = f"[{number}/{len(inputs)}] " if len(inputs) > 1 else ""
        print(f"{count}wrote {len(paths)} stems ({', '.join(paths)}) of {song.name} to {out}")
        _warn_clipped(out)
    return 0


# ---------------------------------------------------------------- msr workshop
def _add_workshop(sub) -> None:
    from msr_lib.presets import PRESETS

    p = sub.add_parser("workshop", help="run every lesson in order, headless: executed notebooks, HTML, time per "
                                        "lesson")
    p.add_argument("--preset", choices=sorted(PRESETS), default="laptop", help="the lessons' preset (default laptop)")
    p.add_argument("--out", required=True, help="folder for the executed notebooks, their HTML and timings.json/.md")
    p.add_argument("--lessons", default=None, help="comma-separated lesson numbers or names (default every lesson)")
    p.add_argument("--no-html", action="store_true", help="skip the HTML copies")
    p.add_argument("--cell-timeout", type=POSITIVE_INT, default=1800, help="seconds one cell may take (default 1800)")
    p.set_defaults(func=_cmd_workshop)


def _cmd_workshop(args) -> int:
    from msr_lib.workshop import markdown_table, run_workshop

    lessons = [name.strip() for name in args.lessons.split(",") if name.strip()] if args.lessons else None
    results = run_workshop(preset=args.preset, out_dir=args.out, lessons=lessons, cell_timeout=args.cell_timeout,
                           html=not args.no_html)
    print(markdown_table(results))
    print(f"\nexecuted lessons and timings.md in {args.out}")
    return 0 if all(r["ok"] for r in results) else 1


# ---------------------------------------------------------------- msr train separator
def _add_train(sub) -> None:
    from msr_lib.presets import PRESETS
    from msr_lib.stems import STEMS

    p = sub.add_parser("train", help="train a model (separator: one stage of the CP-JKU curriculum; restorer: the "
                                      "HiFi++ generalist or an expert)")
    what = p.add_subparsers(dest="model_kind", required=True, metavar="MODEL")
    s = what.add_parser("separator", help="train one curriculum stage of the BS-RoFormer separator")
    s.add_argument("--stage", required=True,  # the names live in msr_lib.train.curriculum.STAGES (imports torch)
                   help="a stage of msr_lib.train.curriculum.STAGES, in curriculum order (an unknown name lists them)")
    s.add_argument("--out", required=True, help="run folder (log.jsonl, run.json, checkpoint/)")
    s.add_argument("--preset", default=None,
                   help=f"{', '.join(PRESETS)} (default: $MSR_PRESET or laptop; bundled: the shipped separators' "
                        "recipe, docs/MODEL_CARD.md)")
    s.add_argument("--init", default=None,
                   help="start from this run folder / checkpoint (the previous stage's run; for pretrain optional, "
                        "e.g. an MSST 4-stem checkpoint)")
    s.add_argument("--steps", type=POSITIVE_INT, default=None,
                   help="optimizer steps (default: the preset's for this stage)")
    s.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    s.add_argument("--data", default=None, help="training song folders (default: the preset's synthetic songs)")
    s.add_argument("--valid-data", default=None, help="validation song folders (default: the preset's)")
    s.add_argument("--batch-size", type=POSITIVE_INT, default=None, help="items per step and process")
    s.add_argument("--lr", type=POSITIVE_FLOAT, default=None, help="peak learning rate")
    s.add_argument("--seed", type=int, default=None, help="seed of data order, initialisation and dropout")
    s.add_argument("--num-workers", type=NON_NEGATIVE_INT, default=None, help="data-loading worker processes")
    s.add_argument("--compile", action="store_true", help="torch.compile the model (long GPU runs)")
    s.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    s.set_defaults(func=_cmd_train_separator)

    r = what.add_parser("restorer", help="train the HiFi++ restorer: the generalist (--stem all) or one stem's expert")
    r.add_argument("--stem", required=True, help="all (the generalist) or one of " + ", ".join(STEMS))
    r.add_argument("--out", required=True, help="run folder (log.jsonl, run.json, checkpoint/)")
    r.add_argument("--preset", default=None, help=f"{', '.join(PRESETS)} (default: $MSR_PRESET or laptop)")
    r.add_argument("--init", default=None, help="start from this restorer run/folder (an expert: the generalist's run)")
    r.add_argument("--method", choices=("full", "lora"), default="full",
                   help="an expert trains every weight (full, default) or LoRA adapters on the generalist (lora)")
    r.add_argument("--source", choices=("degraded", "separated"), default="degraded",
                   help="training inputs: clean stems through the production chain (degraded, default) or a "
                        "separator's estimates cached in --cache (separated)")
    r.add_argument("--cache", default=None, help="folder of cached separator estimates (with --source separated)")
    r.add_argument("--separator", default=None,
                   help="with --source separated: separate the songs missing from --cache with this separator "
                        "first (e.g. bundled:8stem), once per song")
    r.add_argument("--versions", type=POSITIVE_INT, default=1,
                   help="with --separator: masterings separated per song (default 1)")
    r.add_argument("--steps", type=POSITIVE_INT, default=None, help="optimizer steps (default: the preset's)")
    r.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    r.add_argument("--data", default=None, help="training song folders (default: the preset's synthetic songs)")
    r.add_argument("--valid-data", default=None, help="validation song folders (default: the preset's)")
    r.add_argument("--batch-size", type=POSITIVE_INT, default=None, help="items per step and process")
    r.add_argument("--lr", type=POSITIVE_FLOAT, default=None, help="peak learning rate")
    r.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    r.set_defaults(func=_cmd_train_restorer)


def _cmd_train_separator(args) -> int:
    from msr_lib.train.curriculum import get_stage, train_separator

    get_stage(args.stage)  # an unknown stage fails before anything else is checked
    if (args.data is None) != (args.valid_data is None):
        raise MSRError("pass both --data and --valid-data, or neither (the preset's songs)")
    for folder in (args.data, args.valid_data):
        if folder is not None and not Path(folder).is_dir():
            raise MSRError(f"{folder}: no such folder")
    try:
        result = train_separator(
            args.stage, args.out, preset=args.preset, init=args.init, steps=args.steps, resume=args.resume,
            train_songs=args.data, valid_songs=args.valid_data, device=args.device, batch_size=args.batch_size,
            lr=args.lr, seed=args.seed, num_workers=args.num_workers, compile=args.compile or None,
        )
    except KeyboardInterrupt as stopped:
        _interrupted(stopped)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{args.stage}: {result.step} steps; separator in {Path(args.out) / 'checkpoint'}")
    return 0


def _cmd_train_restorer(args) -> int:
    from msr_lib.train.restorer import train_restorer

    if (args.data is None) != (args.valid_data is None):
        raise MSRError("pass both --data and --valid-data, or neither (the preset's songs)")
    for folder in (args.data, args.valid_data):
        if folder is not None and not Path(folder).is_dir():
            raise MSRError(f"{folder}: no such folder")
    if args.source == "separated" and args.cache is None:
        raise MSRError("--source separated needs --cache: the folder of cached separator estimates")
    if args.separator is not None and args.source != "separated":
        raise MSRError("--separator goes with --source separated (it fills --cache)")
    try:
        result = train_restorer(
            args.stem, args.out, preset=args.preset, init=args.init, steps=args.steps, resume=args.resume,
            train_songs=args.data, valid_songs=args.valid_data, source=args.source, cache_dir=args.cache,
            separator=args.separator, versions=args.versions, method=args.method, device=args.device, batch_size=args.batch_size, lr=args.lr,
        )
    except KeyboardInterrupt as stopped:
        _interrupted(stopped)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"restorer {args.stem}: {result.step} steps; restorer in {Path(args.out) / 'checkpoint'}")
    return 0


# ---------------------------------------------------------------- msr export
def _add_export(sub) -> None:
    p = sub.add_parser("export", help="copy a separator or a restorer (e.g. a training run) as a checkpoint folder "
                                      "with fp16 weights")
    p.add_argument("source", help="a training run folder, checkpoint folder, MSST checkpoint or bundled:<name>")
    p.add_argument("--out", required=True,
                   help="the new checkpoint folder (written atomically; replaces a checkpoint folder, refuses one "
                        "holding other files; msr_lib/models/bundled/<name> ships a separator, "
                        "msr_lib/models/bundled/restorers/<name> a restorer)")
    p.set_defaults(func=_cmd_export)


def _is_restorer(source: str) -> bool:
    """Whether ``source`` names a restorer: a bundled restorer, or a folder (or run) whose config says so."""
    from msr_lib.audio import read_json_object
    from msr_lib.models.checkpoint import (
        CONFIG_NAME, MAX_CONFIG_BYTES, RESTORER_MODEL_TYPE, RUN_CHECKPOINT, bundled_restorers,
    )

    if source.startswith("bundled:"):
        return source.split(":", 1)[1] in bundled_restorers()
    for config in (Path(source) / CONFIG_NAME, Path(source) / RUN_CHECKPOINT / CONFIG_NAME):
        if config.is_file():
            try:
                return read_json_object(config, max_bytes=MAX_CONFIG_BYTES).get("model_type") == RESTORER_MODEL_TYPE
            except MSRError:
                return False                  # the loader then says what is wrong with it
    return False


def _cmd_export(args) -> int:
    from msr_lib.audio import check_output_dir
    from msr_lib.models import export_restorer, export_separator
    from msr_lib.models.checkpoint import MODEL_FOLDER_FILES

    check_output_dir(args.out, MODEL_FOLDER_FILES)  # before the model loads: a model folder is replaced, no other
    out = (export_restorer if _is_restorer(args.source) else export_separator)(args.source, args.out)
    size = sum(p.stat().st_size for p in out.iterdir())
    print(f"exported {args.source} -> {out} (fp16, {size / 1e6:.1f} MB)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from msr_lib import __version__

    parser = argparse.ArgumentParser(prog="msr", description="MSR Workbench: Music Source Restoration tools",
                                     epilog=AUDIO_INPUTS, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"msr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_synth(sub)
    _add_degrade(sub)
    _add_evaluate(sub)
    _add_separate(sub)
    _add_restore(sub)
    _add_workshop(sub)
    _add_train(sub)
    _add_export(sub)
    return parser


def _interrupted(stopped: KeyboardInterrupt) -> None:
    """The one line an interrupted training command prints (rank 0 only under torchrun)."""
    if int(os.environ.get("RANK", "0")) == 0:
        when = f" ({stopped})" if str(stopped) else ""
        print(f"msr: interrupted{when}; continue with the same command plus --resume", file=sys.stderr)


def main(argv=None) -> int:
    """Entry point of the ``msr`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MSRError as exc:
        print(f"msr: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the file system refused: read-only, full, no permission…
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"msr: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print("msr: error: out of memory", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("msr: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
