"""The *threads* rows of ``make bench``: a training step of configs/toy_gmm.yaml's MLP and of
configs/digits_edm.yaml's U-Net at 1, 2 and ``auto`` intra-op threads, on the machine as it
is ("quiet") and under a synthetic load this benchmark starts itself (one busy process per
core), the two phases interleaved repeat by repeat.

The steps are the Trainer's (draw, loss, backward, clip, AdamW, EMA). Within a phase of a
repeat the settings run back to back in an order that rotates, so each ratio (2 / 1,
auto / 1) is one of pairs measured under the same conditions; the table gives their median
and range. The process runs with the wait policy ``gmdiff`` gives itself
(``OMP_WAIT_POLICY=PASSIVE``, :func:`gmdiff.threads.prefer_passive_wait`); in each phase
of the first repeat a child process without ``OMP_WAIT_POLICY`` (OpenMP's default wait,
which spins before it sleeps: what ``gmdiff`` ran with before) times the same steps at 1
and 2 threads, for the comparison (one measurement each: such a step under load costs
seconds).

``python -m benchmarks.threads`` prints the rows (``--merge results/bench_cpu.json``
stores them there); ``python -m benchmarks.threads --under-load -- CMD ...`` (or
``--quiet -- CMD ...``) runs CMD under the same synthetic load (or without it) and prints
its wall time: how configs/toy_gmm.yaml's comment was measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gmdiff import threads

threads.prefer_passive_wait()  # as the gmdiff command does, before torch loads OpenMP

import torch

from benchmarks.timing import cpu_name

ROOT = Path(__file__).resolve().parents[1]

#: (label, config, timed steps per measurement)
CASES = [
    ("toy MLP", "configs/toy_gmm.yaml", 10),
    ("digits U-Net", "configs/digits_edm.yaml", 2),
]


@contextlib.contextmanager
def synthetic_load(n: int | None = None) -> Iterator[int]:
    """``n`` busy processes (default: one per core this process may use) for the block."""
    n = len(os.sched_getaffinity(0)) if n is None else n
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)  # let them start spinning
        yield n
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def _trainers() -> list[dict]:
    """Per case: a Trainer (no out_dir), its forward FLOPs per call and auto's choice."""
    from gmdiff import config as C
    from gmdiff import runs
    from gmdiff.train import Trainer

    out = []
    for label, path, k in CASES:
        cfg = C.load_config(ROOT / path)
        run = runs.build(cfg)
        data, _ = runs.data_of(cfg)
        trainer = Trainer(run.trained, run.loss, data, cfg.train, None, runs.transform_of(cfg))
        flops = threads.forward_flops(run.denoiser, run.shape, cfg.train.batch_size)
        out.append({
            "label": label, "config": path, "k": k, "trainer": trainer, "flops": flops,
            "params": sum(p.numel() for p in run.trained.parameters()),
            "batch": cfg.train.batch_size, "auto": runs.train_threads(run),
        })  # fmt: skip
    return out


def _steps(trainer, k: int) -> float:
    """Seconds per step over ``k`` Trainer steps."""
    t0 = time.perf_counter()
    for _ in range(k):
        trainer._train_step(trainer.step)
        trainer.step += 1
    return (time.perf_counter() - t0) / k


def _time_settings(cases: list[dict], settings: dict[str, int], r: int) -> dict:
    """{(case label, setting): s per step}, the settings in an order rotated by ``r``."""
    names = list(settings)
    names = names[r % len(names) :] + names[: r % len(names)]
    out = {}
    for c in cases:
        for name in names:
            with threads.using(settings[name] if name != "auto" else c["auto"]):
                _steps(c["trainer"], 1)  # warm-up after a change of thread count
                out[(c["label"], name)] = _steps(c["trainer"], c["k"])
    return out


def _child(r: int) -> None:
    """Time 1 and 2 threads of every case in this process; print JSON."""
    cases = _trainers()
    times = _time_settings(cases, {"1": 1, "2": 2}, r)
    print(json.dumps({f"{label}|{name}": s for (label, name), s in times.items()}))


def _spinning(r: int) -> dict:
    """The child's times, with OpenMP's default wait (OMP_WAIT_POLICY unset). (Not ACTIVE:
    its idle workers spin for ever, even after the count drops to 1.)"""
    env = {k: v for k, v in os.environ.items() if k != threads.WAIT_ENV}
    src = str(ROOT / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, str(ROOT), env.get("PYTHONPATH")) if p)
    # torch first, so that importing benchmarks.threads leaves the wait policy unset
    code = "import sys, torch; from benchmarks.threads import _child; _child(int(sys.argv[1]))"
    cmd = [sys.executable, "-c", code, str(r)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    raw = json.loads(done.stdout.strip().splitlines()[-1])
    return {tuple(k.split("|")): v for k, v in raw.items()}


def _summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "range": [min(values), max(values)]}


def bench_threads(repeats: int = 3) -> dict:
    """The rows (see the module docstring); ``repeats`` of both phases."""
    before = os.getloadavg()[0]
    cases = _trainers()
    settings = {"1": 1, "2": 2, "auto": 0}
    samples: dict[tuple, list[float]] = {}
    loadavg = {"quiet": [], "load": []}
    n_busy, t0 = len(os.sched_getaffinity(0)), time.time()
    for r in range(repeats):
        for phase in ("quiet", "load") if r % 2 == 0 else ("load", "quiet"):
            with synthetic_load(n_busy) if phase == "load" else contextlib.nullcontext():
                mine = _time_settings(cases, settings, r)
                theirs = _spinning(r) if r == 0 else {}
                loadavg[phase].append(os.getloadavg()[0])
            for (label, name), s in mine.items():
                samples.setdefault((label, phase, name), []).append(s)
            for (label, name), s in theirs.items():
                samples.setdefault((label, phase, f"spin {name}"), []).append(s)
            print(f"threads: repeat {r} {phase} done, {time.time() - t0:.0f} s", file=sys.stderr)
    rows = []
    for c in cases:
        for phase in ("quiet", "load"):
            t = {
                name: samples[(c["label"], phase, name)] for name in (*settings, "spin 1", "spin 2")
            }

            def ratio(a: str, b: str, t: dict = t) -> dict:
                return _summary([x / y for x, y in zip(t[a], t[b])])

            rows.append({
                "model": c["label"], "config": c["config"], "params": c["params"],
                "batch": c["batch"], "gflop_per_call": c["flops"] / 1e9, "auto": c["auto"],
                "phase": phase, "steps_per_measurement": c["k"],
                "ms": {name: 1e3 * statistics.median(v) for name, v in t.items()},
                "ratio_2_1": ratio("2", "1"), "ratio_auto_1": ratio("auto", "1"),
                "ratio_spin2_1": ratio("spin 2", "spin 1"),
                "ratio_spin2_2": ratio("spin 2", "2"),
            })  # fmt: skip
    for c in cases:  # how much the load slows each setting: load / quiet, repeat by repeat
        for name in (*settings, "spin 2"):
            q, ld = samples[(c["label"], "quiet", name)], samples[(c["label"], "load", name)]
            row = next(x for x in rows if x["model"] == c["label"] and x["phase"] == "load")
            row.setdefault("load_over_quiet", {})[name] = _summary(
                [b / a for a, b in zip(q, ld, strict=True)]
            )
    return {
        "device": cpu_name(), "cores": len(os.sched_getaffinity(0)), "torch": torch.__version__,
        "loadavg_1min_before": round(before, 2),
        "repeats": repeats, "busy_processes": n_busy, "default_threads": threads.default_threads(),
        "wait_policy": os.environ.get(threads.WAIT_ENV), "auto_flops": threads.AUTO_FLOPS,
        "loadavg_1min": {k: [round(v, 2) for v in vs] for k, vs in loadavg.items()},
        "rows": rows,
    }  # fmt: skip


def timed_under_load(cmd: list[str], load: bool) -> float:
    """Wall seconds of ``cmd``, under the synthetic load when ``load``."""
    with synthetic_load() if load else contextlib.nullcontext():
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        return time.perf_counter() - t0


def merge(path: Path, repeats: int) -> None:
    """Measure the rows and store them as ``cpu.thread_rows`` of the results file ``path``
    (the other rows as they were): ``make bench`` measures everything at once."""
    data = json.loads(path.read_text())
    data["cpu"]["thread_rows"] = bench_threads(repeats)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote the threads rows into {path}")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--under-load"] or argv[:1] == ["--quiet"]:
        cmd = argv[2:] if argv[1:2] == ["--"] else argv[1:]
        s = timed_under_load(cmd, argv[0] == "--under-load")
        print(f"{argv[0][2:]}: {s:.1f} s wall, load average {os.getloadavg()[0]:.1f}")
    elif argv[:1] == ["--merge"]:
        merge(Path(argv[1]), int(argv[2]) if len(argv) > 2 else 3)
    else:
        print(json.dumps(bench_threads(), indent=1))


if __name__ == "__main__":
    main()
