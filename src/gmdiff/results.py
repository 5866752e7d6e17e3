"""Stored results of chapter runs: what a chapter run with other parameters (more seeds,
the ``long`` profile) produced, kept under ``results/`` as JSON so that the ``ci`` chapter
shows it beside its own run and a verdict's evidence is a stored output, never a typed
number.

* :func:`save_results` / :func:`load_results`: ``meta`` (profile, seed, commit, date, ...)
  and named tables, one JSON file per run.
* :func:`seed_file`: the file of one chapter's run with one seed
  (``results/seeds/<chapter>-seed<k>.json``); :func:`with_stored_seeds`: this run's
  tables stacked with the stored seeds' (a ``seed`` column), for paired comparisons
  (:func:`gmdiff.stats.paired_table`).
* :func:`commit`: the repository's commit, for ``meta``.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pandas as pd

from gmdiff.storage import atomic_write

#: The repository's ``results/`` folder (src/gmdiff/results.py -> two levels up).
ROOT = Path(__file__).resolve().parents[2] / "results"


def commit() -> str:
    """The repository's current commit (short), or "unknown" outside a git checkout."""
    done = subprocess.run(["git", "-C", str(ROOT.parent), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.stdout.strip() or "unknown"


def run_meta(profile: str, **extra) -> dict:
    """The ``meta`` of a stored run: profile, commit, date and the caller's ``extra``."""
    return {"profile": profile, "commit": commit(), "date": time.strftime("%Y-%m-%d")} | extra


def save_results(path: str | Path, meta: dict, **tables: pd.DataFrame) -> None:
    """Write ``meta`` and each table (its rows) as JSON, atomically."""
    out = {"meta": meta} | {k: t.to_dict(orient="records") for k, t in tables.items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(out, indent=1, default=float) + "\n")


def load_results(
    path: str | Path, profile: str | None = None
) -> tuple[dict, dict[str, pd.DataFrame]]:
    """(meta, tables) as :func:`save_results` wrote them; given ``profile``, refuses a run
    of another profile (a ``ci`` chapter shows stored runs of its own profile only)."""
    raw = json.loads(Path(path).read_text())
    meta = raw.pop("meta")
    if profile is not None and meta.get("profile") != profile:
        raise ValueError(
            f"{path} holds a run of profile {meta.get('profile')!r}, not {profile!r}: rerun "
            f"the chapter with -p profile {profile} -p results_dir {Path(path).parent}"
        )
    return meta, {k: pd.DataFrame(rows) for k, rows in raw.items()}


def seed_file(chapter: str, seed: int, root: str | Path = ROOT / "seeds") -> Path:
    """Where a chapter's run with ``-p seed <seed>`` keeps its results."""
    return Path(root) / f"{chapter}-seed{seed}.json"


def stored_seeds(
    chapter: str, seeds, root: str | Path = ROOT / "seeds", profile: str | None = None
) -> dict[str, pd.DataFrame]:
    """Each table of the chapter's stored seed runs, the seeds' rows concatenated with a
    ``seed`` column. Refuses, naming the command, when a seed's file is missing or (given
    ``profile``) was run with another profile."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for s in seeds:
        path = seed_file(chapter, s, root)
        command = (
            f"python -m papermill notebooks/{chapter}.py out.ipynb -p profile {profile or 'ci'} "
            f'-p seed {s} -y "seeds: [{s}]" -p results_dir {Path(root)}'
        )
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run {command}")
        _, tables = load_results(path, profile)
        for name, t in tables.items():
            parts.setdefault(name, []).append(t.assign(seed=s))
    return {name: pd.concat(ts, ignore_index=True) for name, ts in parts.items()}


def with_stored_seeds(
    chapter: str,
    tables: dict[str, pd.DataFrame],
    seed: int,
    seeds,
    profile: str,
    root: str | Path = ROOT / "seeds",
) -> dict[str, pd.DataFrame]:
    """This run's ``tables`` (of seed ``seed``) and the stored runs of the other ``seeds``
    (:func:`stored_seeds`), each table's rows stacked with a ``seed`` column."""
    others = stored_seeds(chapter, [s for s in seeds if s != seed], root, profile)
    return {
        name: pd.concat([t.assign(seed=seed), others.get(name)], ignore_index=True)
        for name, t in tables.items()
    }
