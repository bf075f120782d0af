"""Training throughput at the bundled size: seconds of training audio per wall second, data loading included.

Every configuration runs the real loop (:func:`msr_lib.train.loop.train`) on the real
:class:`~msr_lib.data.datasets.MultitrackDataset` with :func:`msr_lib.train.curriculum.separation_batch_loss`, from
the same initial weights, in this one process; the configurations alternate (A B C … A B C …, ``--rounds`` times)
so that load from other jobs hits them alike. A configuration's time is the wall time between the log rows of its
first and last timed step (``--warmup`` steps are run first and not timed), so it holds data loading, forward, loss,
backward, clipping, the AdamW step, the EMA update and the log line. Printed per configuration: wall seconds per
step (median over rounds), seconds of training audio per wall second (batch × chunk seconds / step time), the ratio
to ``today``, the CPU seconds per step of this process (``time.process_time``; DataLoader workers not counted) and
the ratio of audio seconds per CPU second to ``today``'s. With other jobs on the machine, run with ``--threads 1``
and read the CPU columns: wall time then follows the load more than the configuration.

Configurations with ``processes`` > 1 are data parallel as under ``torchrun --nproc_per_node N``: N spawned
processes of one torch thread each join a gloo process group (the loop wraps the model in DDP), each rank takes
batch / N items of every step, so a step holds the same items as ``today``'s. Their time is rank 0's wall time
between its log rows; their CPU columns sum every rank's CPU time from its first timed forward to the end of its run.

Measured (issue 10; 2-core AMD EPYC shared with other jobs, load average 4.3–7.3; ``--songs`` 6 synthetic 20 s songs,
``--stages clean --steps 4 --warmup 1 --rounds 2``, two runs): ``today`` (2 threads) took 16–30 s/step and
12–18 CPU-s/step (its two threads wait for each other while the other jobs hold a core); one 1-thread process with
micro-batches (``threads1+micro2``, ``threads1+micro1``) 3.2–6.0 s/step and 3.3–3.8 CPU-s/step; two 1-thread DDP
ranks (``ddp2``, ``ddp2+micro1``) 3.9–5.7 s/step and 3.9–4.1 CPU-s/step, no faster than one 1-thread process under
that load. On the idle machine (2026-12-01, load average 0.1 at the start; ``--stages clean --steps 6 --warmup 2
--rounds 2 --configs today,micro2,threads1+micro2,ddp2,ddp2+micro1``): ``today`` 3.60 s/step (2.23 audio s/s),
``micro2`` 2.68 (1.34x), ``threads1+micro2`` 3.94 (0.91x), ``ddp2`` 2.06 (1.75x), ``ddp2+micro1`` 1.99 s/step
(4.03 audio s/s, 1.81x): two 1-thread ranks beat one 2-thread process once nothing else holds a core, but not 2x.

Stages: ``clean`` is ``pretrain`` (a new bundled-size 4-stem model, every weight trains, clean mixes);
``mastered`` is ``lora-mastered`` (LoRA on ``bundled:4stem``, mastered mixes made by ``degrade_mix`` per item, or
read from a pre-rendered cache: the cache's one-time rendering is timed and printed separately).

    .venv/bin/python benchmarks/bench_training_throughput.py [--songs DIR] [--steps 20] [--warmup 3] [--rounds 2]
        [--stages clean,mastered] [--configs today,bf16,...]

Without ``--songs`` it renders ``--render`` songs of 20 s with ``msr_lib.data.synth.synthesize_songs`` into a
temporary folder. ``--profile`` first times the parts of one training step (data, forward, loss, backward,
optimizer) and one on-the-fly mastered item.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch
import torch.multiprocessing as mp

from msr_lib.data.datasets import MultitrackDataset
from msr_lib.presets import get_preset
from msr_lib.stems import FOUR_STEMS
from msr_lib.train.curriculum import build_stage_model, separation_batch_loss
from msr_lib.train.loop import TrainConfig, read_log, train

STAGES = {"clean": "pretrain", "mastered": "lora-mastered"}


@dataclass(frozen=True)
class Setup:
    """One configuration: TrainConfig fields, bf16 autocast on CPU, torch threads, chunk length, batch size (of the
    whole step), whether mastered mixes are cached and how many data-parallel processes share a step."""

    name: str
    train: dict = field(default_factory=dict)
    bf16: bool = False  # torch.autocast("cpu", bfloat16) around forward + loss (the model's STFTs stay float32)
    threads: int | None = None  # None: torch's default
    chunk_seconds: float | None = None  # None: the preset's
    batch_size: int | None = None  # None: the preset's
    cached_masters: bool = False
    processes: int = 1  # > 1: that many 1-thread DDP ranks (gloo), batch / processes items each



SETUPS = {s.name: s for s in (
    Setup("today"),
    Setup("bf16", bf16=True),
    Setup("threads1", threads=1),
    Setup("workers1", train={"num_workers": 1}),
    Setup("cached", cached_masters=True),
    Setup("chunk1", chunk_seconds=1.0),
    Setup("chunk3", chunk_seconds=3.0),
    Setup("chunk4", chunk_seconds=4.0),
    Setup("bf16+cached", bf16=True, cached_masters=True),
    Setup("bf16+chunk4", bf16=True, chunk_seconds=4.0),
    Setup("bf16+cached+chunk4", bf16=True, cached_masters=True, chunk_seconds=4.0),
    Setup("batch8", batch_size=8),
    Setup("batch2", batch_size=2),
    Setup("compile", train={"compile": True}),
    Setup("micro2", train={"micro_batch_size": 2}),
    Setup("micro1", train={"micro_batch_size": 1}),
    Setup("micro2+chunk1", train={"micro_batch_size": 2}, chunk_seconds=1.0),
    Setup("micro2+cached", train={"micro_batch_size": 2}, cached_masters=True),
    Setup("micro2+chunk1+cached", train={"micro_batch_size": 2}, chunk_seconds=1.0, cached_masters=True),
    Setup("threads1+micro2", threads=1, train={"micro_batch_size": 2}),
    Setup("threads1+micro1", threads=1, train={"micro_batch_size": 1}),
    Setup("ddp2", processes=2),
    Setup("ddp2+micro1", processes=2, train={"micro_batch_size": 1}),
    Setup("ddp2+chunk1", processes=2, chunk_seconds=1.0),
    Setup("ddp2+micro1+chunk1", processes=2, train={"micro_batch_size": 1}, chunk_seconds=1.0),
    Setup("ddp2+cached", processes=2, cached_masters=True),
)}


def machine_facts() -> str:
    flags = ""
    if Path("/proc/cpuinfo").is_file():
        cpuinfo = Path("/proc/cpuinfo").read_text().split()
        flags = " ".join(sorted({f for f in cpuinfo if f in ("avx512f", "avx512_bf16", "amx_bf16")}))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs ({flags}), torch "
            f"{torch.__version__}, threads {torch.get_num_threads()} intra / {torch.get_num_interop_threads()} "
            f"interop, load average {load}")


def time_one_run(setup: Setup, stage: str, *, songs: Path, cache: Path, versions: int, base_model, preset,
                 steps: int, warmup: int, work: Path,
                 rank: int | None = None) -> tuple[float, float, float, list[float]]:
    """(wall s/step, CPU s/step, audio seconds per step, every step's loss) of ``steps`` timed steps after
    ``warmup``. With ``setup.processes`` > 1 it spawns the ranks, each of which calls it again with its ``rank``."""
    if setup.processes > 1 and rank is None:
        return time_data_parallel(setup, stage, songs=songs, cache=cache, versions=versions, base_model=base_model,
                                  preset=preset, steps=steps, warmup=warmup, work=work)
    mastered = stage == "mastered"
    chunk = setup.chunk_seconds or preset.train["chunk_seconds"]
    batch = setup.batch_size or preset.train["batch_size"]
    rank_batch = batch // setup.processes
    total = warmup + steps
    data = MultitrackDataset(songs, stems=FOUR_STEMS, chunk_seconds=chunk, length=total * batch, seed=0,
                             degrade=True if mastered else None, preload=False,
                             mastered_cache=cache if mastered and setup.cached_masters else None,
                             mastered_versions=versions)
    config = TrainConfig(**{"steps": total, "batch_size": rank_batch, "warmup_steps": preset.train["warmup_steps"],
                            "lr": 1e-3, "checkpoint_every": 10**9, "validate_every": 10**9, **setup.train})
    marks: dict[int, tuple[float, float]] = {}
    micro = config.micro_batch_size or rank_batch
    calls_per_step = -(-rank_batch // micro)
    loss_calls = [0]
    cpu_at_timed_start = [0.0]

    def loss_fn(model, batch):
        if loss_calls[0] == warmup * calls_per_step:  # the first forward of the first timed step, on every rank
            cpu_at_timed_start[0] = time.process_time()
        loss_calls[0] += 1
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=setup.bf16):
            return separation_batch_loss(model, batch, mastered=mastered)

    def mark(row):
        if "loss" in row:
            marks[row["step"]] = (time.perf_counter(), time.process_time())

    previous = torch.get_num_threads()
    if setup.threads:
        torch.set_num_threads(setup.threads)
    try:
        train(copy.deepcopy(base_model), data, config=config, out_dir=work / f"{setup.name}-{stage}",
              loss_fn=loss_fn, save_model=lambda m, folder: None, progress=False, on_log=mark, device="cpu")
    finally:
        torch.set_num_threads(previous)
    if rank is not None:  # a data-parallel rank: rank 0 alone logs; every rank counts its CPU time
        cpu = (time.process_time() - cpu_at_timed_start[0]) / steps
        if rank > 0:
            return float("nan"), cpu, batch * chunk, []
    losses = [row["loss"] for row in read_log(work / f"{setup.name}-{stage}") if "loss" in row]
    (w0, c0), (w1, c1) = marks[warmup], marks[total]
    return (w1 - w0) / steps, cpu if rank is not None else (c1 - c0) / steps, batch * chunk, losses


def _rank_main(rank: int, world: int, port: int, result_dir: Path, run: dict) -> None:
    """One spawned data-parallel rank (the environment torchrun would give it), one torch thread."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(run["setup"].threads or 1)
    timing = time_one_run(**run, rank=rank)
    (result_dir / f"rank{rank}.json").write_text(json.dumps(timing))
    torch.distributed.destroy_process_group()


def time_data_parallel(setup: Setup, stage: str, **run) -> tuple[float, float, float, list[float]]:
    """:func:`time_one_run` over ``setup.processes`` spawned ranks: rank 0's wall time and losses, all ranks' CPU."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result_dir = Path(tempfile.mkdtemp(prefix="ranks_", dir=run["work"]))
    mp.spawn(_rank_main, args=(setup.processes, port, result_dir, {"setup": setup, "stage": stage, **run}),
             nprocs=setup.processes, join=True)
    ranks = [json.loads((result_dir / f"rank{r}.json").read_text()) for r in range(setup.processes)]
    return ranks[0][0], sum(r[1] for r in ranks), ranks[0][2], ranks[0][3]


def profile_step(stage: str, *, songs: Path, base_model, preset) -> None:
    """Print where one training step's time goes, and what one on-the-fly mastered item costs."""
    mastered = stage == "mastered"
    batch_size, chunk = preset.train["batch_size"], preset.train["chunk_seconds"]
    data = MultitrackDataset(songs, stems=FOUR_STEMS, chunk_seconds=chunk, length=64, seed=0,
                             degrade=True if mastered else None, preload=False)
    model = copy.deepcopy(base_model).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for amp in (False, True):
        rows = []
        for repeat in range(3):
            t0 = time.perf_counter()
            items = [data[repeat * batch_size + i] for i in range(batch_size)]
            batch = {k: torch.stack([item[k] for item in items]) for k in items[0]}
            t1 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                estimate = model(batch["mixture"])
                t2 = time.perf_counter()
                loss, _ = separation_batch_loss(lambda _: estimate, batch, mastered=mastered)
            t3 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            t4 = time.perf_counter()
            optimizer.step()
            t5 = time.perf_counter()
            rows.append((t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, float(loss.detach())))
        parts = [statistics.median(r[i] for r in rows[1:]) for i in range(5)]
        print(f"  profile {stage:8s} {'bf16' if amp else 'fp32'}: data {parts[0]:.2f} s, forward {parts[1]:.2f}, "
              f"loss {parts[2]:.2f}, backward {parts[3]:.2f}, optimizer {parts[4]:.2f} "
              f"(losses {', '.join(f'{r[5]:.3f}' for r in rows)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--songs", type=Path, help="song folders to train on (default: render --render songs)")
    parser.add_argument("--render", type=int, default=6, help="songs to render when --songs is not given")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration and round")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stages", default="clean,mastered")
    parser.add_argument("--configs", default="today,bf16,threads1,workers1,cached,bf16+cached",
                        help=f"comma-separated, among {', '.join(SETUPS)}")
    parser.add_argument("--versions", type=int, default=2, help="cached mastered versions per song")
    parser.add_argument("--threads", type=int, help="torch threads for every configuration without its own "
                        "(1 makes the CPU column a load-robust measure of work)")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    setups = [SETUPS[name] for name in args.configs.split(",")]
    stages = args.stages.split(",")
    preset = get_preset("bundled")
    print(machine_facts())
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        work = Path(tmp)
        songs = args.songs
        if songs is None:
            from msr_lib.data.synth import synthesize_songs

            songs = work / "songs"
            synthesize_songs(songs, songs=args.render, seconds=20.0, seed=1000, progress=False)
        models = {}
        torch.manual_seed(0)
        if "clean" in stages:
            models["clean"] = build_stage_model("pretrain", model_config=preset.model)[0]
        if "mastered" in stages:
            models["mastered"] = build_stage_model("lora-mastered", init="bundled:4stem")[0]
        cache = work / "masters"
        if "mastered" in stages and any(s.cached_masters for s in setups):
            started, cpu_started = time.perf_counter(), time.process_time()
            cached = MultitrackDataset(songs, stems=FOUR_STEMS, chunk_seconds=2.0, length=1, seed=0, degrade=True,
                                       preload=False, mastered_cache=cache, mastered_versions=args.versions)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            song_seconds = sum(sf.info(str(next(iter(e.stems.values()))[0])).duration for e in cached.entries)
            print(f"cache: {len(cached.entries)} songs × {args.versions} versions mastered whole in {seconds:.1f} s, "
                  f"{cpu:.1f} CPU-s ({args.versions * song_seconds / cpu:.1f} s of audio per CPU-s)")
        if args.profile:
            for stage in stages:
                profile_step(stage, songs=songs, base_model=models[stage], preset=preset)
        results: dict[tuple[str, str], list[tuple[float, float, float, list[float]]]] = {}
        for round_ in range(args.rounds):
            for stage in stages:
                for setup in setups:
                    if setup.cached_masters and stage != "mastered":
                        continue
                    timing = time_one_run(setup, stage, songs=songs, cache=cache, versions=args.versions,
                                          base_model=models[stage],
                                          preset=preset, steps=args.steps, warmup=args.warmup, work=work)
                    results.setdefault((stage, setup.name), []).append(timing)
                    print(f"  round {round_ + 1} {stage:8s} {setup.name:20s} {timing[0]:.2f} s/step "
                          f"(load {os.getloadavg()[0]:.2f})", flush=True)
        print(f"\n{args.steps} timed steps after {args.warmup} per configuration and round, {args.rounds} rounds, "
              f"songs {songs}; {machine_facts()}")
        print("(loss vs today: the largest relative difference of the step losses, same weights and batches; only "
              "configurations with today's chunk and batch)")
        print(f"{'stage':9s} {'configuration':20s} {'s/step':>7s} {'audio s/s':>9s} {'× today':>8s} "
              f"{'CPU s/step':>10s} {'× today CPU':>11s} {'loss vs today':>13s}")
        for stage in stages:
            today = results.get((stage, "today"))
            for setup in setups:
                runs = results.get((stage, setup.name))
                if not runs:
                    continue
                wall = statistics.median(r[0] for r in runs)
                cpu = statistics.median(r[1] for r in runs)
                rate = runs[0][2] / wall
                ratio = f"{rate * statistics.median(r[0] for r in today) / today[0][2]:8.2f}" if today else " " * 8
                cpu_ratio = (f"{runs[0][2] / cpu * statistics.median(r[1] for r in today) / today[0][2]:11.2f}"
                             if today else " " * 11)
                same_items = today and runs[0][2] == today[0][2] and not setup.cached_masters
                drift = (f"{max(abs(a / b - 1) for a, b in zip(runs[0][3], today[0][3])):13.1%}" if same_items
                         else " " * 13)
                print(f"{stage:9s} {setup.name:20s} {wall:7.2f} {rate:9.2f} {ratio} {cpu:10.2f} {cpu_ratio} {drift}")


if __name__ == "__main__":
    main()
