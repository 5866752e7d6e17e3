"""Render the benchmark results and the stored notebooks' cell profile into the marked
sections of book/performance.md (see gmdiff.book_times).

``python -m benchmarks.render [--results results] [--page book/performance.md]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gmdiff.book_times import replace_section

ROOT = Path(__file__).resolve().parents[1]


def _r(x: float) -> str:
    return f"{x:.2f}"


def _range(v: list[float]) -> str:
    return f"{v[0]:.2f}-{v[1]:.2f}"


def cpu_tables(data: dict) -> str:
    cpu = data["cpu"]
    note = f", {data['note']}" if data.get("note") else ""
    head = (
        f"Device: **{cpu['device']}**, {cpu['threads']} thread(s) (OMP_NUM_THREADS="
        f"{cpu['omp_num_threads']}{note}); torch {data['torch']}; size `{data['size']}`; "
        f"whole run {data['wall_s']:.0f} s. Each ratio is ours / theirs, the median over "
        f"{data['repeats']} interleaved pairs, with the range of the pairs; below 1 means "
        "gmdiff is faster."
    )
    out = [
        head,
        "",
        (
            "| network | parameters | batch | training step ratio (range) "
            "| sampling call ratio (range) | our step (s) |"
        ),
        "|---|---:|---:|---|---|---:|",
    ]
    for u in cpu["unets"]:
        out.append(
            f"| {u['net']} | {u['params']:,} | {u['batch']} | {_r(u['train_ratio'])} "
            f"({_range(u['train_range'])}) | {_r(u['sample_ratio'])} "
            f"({_range(u['sample_range'])}) | {u['train_ours_s']:.3f} |"
        )
    out += [
        "",
        (
            "| sampler | model calls (ours / diffusers) | overhead per call, ours (us) "
            "| diffusers (us) | ratio (range) |"
        ),
        "|---|---|---:|---:|---|",
    ]
    for s in cpu["samplers"]:
        out.append(
            f"| {s['sampler']} | {s['calls_ours']} / {s['calls_theirs']} | "
            f"{s['ours_us_per_call']:.0f} | {s['theirs_us_per_call']:.0f} | {_r(s['ratio'])} "
            f"({_range(s['range'])}) |"
        )
    t, ld = cpu["trainer"], cpu["loading"]
    out += [
        "",
        "| measurement | value |",
        "|---|---|",
        f"| Trainer / bare loop, `{t['config']}` | {_r(t['ratio'])} ({_range(t['range'])}) |",
        (
            f"| Trainer step, `{t['config']}` | {t['trainer_ms_per_step']:.1f} ms "
            f"(bare loop {t['bare_ms_per_step']:.1f} ms) |"
        ),
        (
            f"| CelebA-64 loading, in process | {ld['images_per_s_workers0']:.0f} images/s "
            f"({ld['ms_per_batch_workers0']:.0f} ms per batch of {ld['batch']}) |"
        ),
        (
            f"| CelebA-64 loading, 2 workers (start-up included) | "
            f"{ld['images_per_s_workers2']:.0f} images/s |"
        ),
        (
            f"| CelebA-64 loading, 2 workers, steady state (3k - k batches) | "
            f"{ld['images_per_s_workers2_steady']:.0f} images/s |"
        ),
        (
            f"| in process / 2 workers with start-up, time | {_r(ld['ratio'])} "
            f"({_range(ld['range'])}) |"
        ),
    ]
    return "\n".join(out)


def _ratio(v: dict) -> str:
    lo, hi = v["range"]
    return f"{v['median']:.2f}" if lo == hi else f"{v['median']:.2f} ({lo:.2f}-{hi:.2f})"


def threads_table(data: dict) -> str:
    """The threads rows of benchmarks/threads.py: steps at 1, 2 and auto threads, quiet and
    under the synthetic load, and OpenMP's default wait for comparison."""
    t = data["cpu"].get("thread_rows")
    if t is None:
        return "Not yet run: `make bench` adds this table (results/bench_cpu.json)."
    avg = {k: ", ".join(f"{v:.1f}" for v in vs) for k, vs in t["loadavg_1min"].items()}
    out = [
        (
            f"Device: **{t['device']}**, {t['cores']} cores; torch {t['torch']}; "
            f"{t['repeats']} repeats of both phases, interleaved. *quiet*: no load started by "
            "the benchmark (other jobs shared the machine: load average "
            f"{t['loadavg_1min_before']:.1f} before the run); *load*: {t['busy_processes']} "
            "busy processes (one per core). 1-minute load average at the end of each phase "
            "(it lags: a quiet phase still holds the load before it): "
            f"quiet {avg['quiet']}; load {avg['load']}. This "
            f"process: OMP_WAIT_POLICY={t['wait_policy']}, default {t['default_threads']} "
            f"threads; auto's threshold {t['auto_flops'] / 1e9:g} GFLOP per forward call, so "
            "auto is the setting of the 1 or 2 column, timed a third time. Times: median ms "
            "per Trainer step; ratios: median (range) over the repeats of pairs timed back to "
            "back. *Default wait*: a child process without OMP_WAIT_POLICY (what `gmdiff` "
            "ran with before), first repeat only, its 2 / 1 from that child."
        ),
        "",
        "Models: "
        + "; ".join(
            dict.fromkeys(
                f"{r['model']}: `{r['config']}`, batch {r['batch']}, {r['gflop_per_call']:.2f} "
                f"GFLOP per call, auto = {r['auto']} thread(s)"
                for r in t["rows"]
            )
        )
        + ".",
        "",
        "| model | phase | 1 thread (ms) | 2 threads (ms) | auto (ms) | default wait, 2 (ms) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in t["rows"]:
        ms = r["ms"]
        out.append(
            f"| {r['model']} | {r['phase']} | {ms['1']:.0f} | {ms['2']:.0f} | {ms['auto']:.0f} "
            f"| {ms['spin 2']:.0f} |"
        )
    out += ["", "| model | phase | 2 / 1 | auto / 1 | default wait, 2 / 1 |", "|---|---|---|---|---|"]
    for r in t["rows"]:
        out.append(
            f"| {r['model']} | {r['phase']} | {_ratio(r['ratio_2_1'])} | "
            f"{_ratio(r['ratio_auto_1'])} | {_ratio(r['ratio_spin2_1'])} |"
        )
    out += [
        "",
        "| model | load / quiet: 1 thread | 2 threads | auto | default wait, 2 threads |",
        "|---|---|---|---|---:|",
    ]
    for r in (r for r in t["rows"] if r["phase"] == "load"):
        lq = r["load_over_quiet"]
        out.append(
            f"| {r['model']} | {_ratio(lq['1'])} | {_ratio(lq['2'])} | {_ratio(lq['auto'])} | "
            f"{_ratio(lq['spin 2'])} |"
        )
    return "\n".join(out)


def ensemble_table(data: dict | None) -> str:
    """The rows of benchmarks/ensemble.py: K runs trained one after another against one
    batched bank of the same K runs."""
    if data is None:
        return "Not yet run: `make bench` adds this table (results/bench_ensemble.json)."
    rows = data["rows"]
    out = [
        (
            f"Device: **{data['cpu']}**, 1 thread; torch {data['torch']}; configs/smd_toy.yaml's "
            f"DDPM baseline (MLP 3 x 128, eps loss, batch 256), {rows[0]['steps']} steps of "
            f"every member from a fresh initialisation; the median of {rows[0]['repeats']} "
            "interleaved pairs, with the range of the pairs; above 1 means the bank is faster."
        ),
        "",
        "| members K | one after another (s) | batched bank (s) | one after another / bank (range) |",
        "|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['K']} | {r['sequential_s']:.2f} | {r['bank_s']:.2f} | {_r(r['ratio'])} "
            f"({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) |"
        )
    return "\n".join(out)


def gpu_table(data: dict | None) -> str:
    if data is None:
        return (
            "Not yet run: no GPU was available where these pages were built. `make bench` on "
            "a CUDA machine adds this table (results/bench_gpu.json)."
        )
    gpu = data["gpu"]
    out = [
        (
            f"Device: **{gpu['device']}**; torch {data['torch']}; batch {gpu['rows'][0]['batch']} "
            "(Ho et al. 2020 and score_sde on CIFAR-10). MFU: FLOPs of a training step counted by "
            "torch.utils.flop_counter over the wall time, divided by the device's dense peak for "
            "that precision (bf16 and TF32 peaks are tensor-core peaks)."
        ),
        "",
        (
            "| network | precision | compiled | training images/s | samples/s "
            "| peak memory (GiB) | GFLOP/step | MFU |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in gpu["rows"]:
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        out.append(
            f"| {r['net']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | "
            f"{r['train_images_per_s']:.0f} | {r['samples_per_s']:.2f} | "
            f"{r['peak_mem_gib']:.1f} | {r['flops_per_step'] / 1e9:.0f} | {mfu} |"
        )
    return "\n".join(out)


def cell_profile(notebooks: Path, top: int = 10) -> str:
    """The slowest code cells of the stored notebooks by papermill's recorded durations."""
    cells, totals = [], {}
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = json.loads(path.read_text())
        totals[path.stem] = nb["metadata"].get("papermill", {}).get("duration") or 0.0
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        for i, c in enumerate(code):
            d = c["metadata"].get("papermill", {}).get("duration") or 0.0
            src = "".join(c["source"]).strip().splitlines()
            first = next((s for s in src if not s.startswith("#")), src[0] if src else "")
            cells.append((d, path.stem, i, first[:60].replace("|", "\\|")))
    cells.sort(reverse=True)
    total = sum(totals.values())
    out = [
        (
            f"Papermill's recorded times of the stored notebooks, as each was last executed (on "
            f"a shared machine, some with their trained models already cached, so these locate "
            f"the slow cells; the cold times are in the reproducibility page): {len(totals)} "
            f"notebooks, {total:.0f} s ({total / 60:.1f} min) in all."
        ),
        "",
        "| notebook | code cell | time (s) | share of all | first line |",
        "|---|---:|---:|---:|---|",
    ]
    for d, stem, i, first in cells[:top]:
        out.append(f"| `{stem}` | {i} | {d:.0f} | {100 * d / total:.0f}% | `{first}` |")
    return "\n".join(out)


def render(results: Path, page: Path, notebooks: Path) -> str:
    text = page.read_text()
    cpu = results / "bench_cpu.json"
    gpu = results / "bench_gpu.json"
    if cpu.is_file():
        cpu_data = json.loads(cpu.read_text())
        text = replace_section(text, "bench-cpu", cpu_tables(cpu_data))
        text = replace_section(text, "bench-threads", threads_table(cpu_data))
    bank = results / "bench_ensemble.json"
    bank_data = json.loads(bank.read_text()) if bank.is_file() else None
    text = replace_section(text, "bench-ensemble", ensemble_table(bank_data))
    gpu_data = json.loads(gpu.read_text()) if gpu.is_file() else None
    text = replace_section(text, "bench-gpu", gpu_table(gpu_data))
    return replace_section(text, "slowest-cells", cell_profile(notebooks))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--page", default=str(ROOT / "book/performance.md"))
    args = ap.parse_args(argv)
    page = Path(args.page)
    new = render(Path(args.results), page, ROOT / "notebooks")
    changed = page.read_text() != new
    if changed:
        page.write_text(new)
    print(f"{page}: {'updated' if changed else 'unchanged'}")


if __name__ == "__main__":
    main()
