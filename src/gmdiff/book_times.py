"""Generated tables in the book's Markdown pages, each between a pair of HTML comment
markers ``<!-- name:start -->`` ... ``<!-- name:end -->``, so a page's numbers are always
rendered from a results file and cannot drift from it (tests/test_book_tables.py).

``python -m gmdiff.book_times results/notebook_times.json`` renders the per-notebook
times of ``pytest --nbval`` (written by :mod:`gmdiff.nbval_times`) into
book/reproducibility.md; benchmarks/render.py does the same for book/performance.md.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

NOTEBOOK_TIMES = "notebook-times"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def section(text: str, name: str) -> str:
    """The text between the markers of ``name`` (stripped); a ValueError if absent."""
    start, end = markers(name)
    match = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), text, re.DOTALL)
    if match is None:
        raise ValueError(f"the page has no section between {start} and {end}")
    return match.group(1).strip()


def replace_section(text: str, name: str, body: str) -> str:
    """``text`` with the section ``name`` replaced by ``body``."""
    section(text, name)  # raises when the markers are missing
    start, end = markers(name)
    pattern = re.escape(start) + r"\n.*?" + re.escape(end)
    return re.sub(pattern, lambda _: f"{start}\n{body.strip()}\n{end}", text, flags=re.DOTALL)


def times_table(data: dict) -> str:
    """Markdown: one row per notebook, slowest first, and the total."""
    nbs = data["notebooks"]
    rows = sorted(nbs.items(), key=lambda kv: -kv[1]["seconds"])
    total = sum(v["seconds"] for v in nbs.values())
    m, run = data.get("machine", {}), data.get("run", {})
    workers = run.get("workers", 1)
    command = "pytest --nbval" + (f" -n {workers} --dist loadfile" if workers > 1 else "")
    side = (
        f" {workers} test files ran at a time, so a notebook's times include the cores it "
        "shared with the other."
        if workers > 1
        else ""
    )
    whole = (
        f" The whole run (unit tests included, pytest start to end): **{run['seconds']:.0f} s "
        f"({run['seconds'] / 60:.1f} min)**."
        if run
        else ""
    )
    lines = [
        (
            f"Measured by `GMDIFF_NB_TIMES=results/notebook_times.json {command}` on "
            f"{m.get('cpus', '?')} CPUs ({m.get('processor') or 'unknown'}, OMP_NUM_THREADS="
            f"{m.get('omp_num_threads') or 'unset'}). Cells: the sum of the cells' test times, "
            "kernel start included; wall: from the start of the first cell to the end of the last "
            f"(pytest start-up and collection are outside both).{side}{whole}"
        ),
        "",
        "| notebook | cells | cells (s) | wall (s) | passed |",
        "|---|---:|---:|---:|---|",
    ]
    for nb, v in rows:
        wall = f"{v['wall_seconds']:.0f}" if "wall_seconds" in v else "-"
        lines.append(
            f"| `{Path(nb).stem}` | {v['cells']} | {v['seconds']:.0f} | {wall} | "
            f"{'yes' if v['passed'] else 'no'} |"
        )
    walls = [v["wall_seconds"] for v in nbs.values() if "wall_seconds" in v]
    wall_total = f"**{sum(walls):.0f}**" if len(walls) == len(nbs) else "-"
    label = "**total**" if workers == 1 else f"**sum** ({workers} at a time)"
    lines.append(f"| {label} | | **{total:.0f}** ({total / 60:.1f} min) | {wall_total} | |")
    return "\n".join(lines)


def render_page(page: Path, name: str, body: str) -> bool:
    """Write ``body`` into the section ``name`` of ``page``; True if the page changed."""
    old = page.read_text()
    new = replace_section(old, name, body)
    if new != old:
        page.write_text(new)
    return new != old


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="render notebook times into the book")
    ap.add_argument("json", nargs="?", default="results/notebook_times.json")
    ap.add_argument("--page", default="book/reproducibility.md")
    args = ap.parse_args(argv)
    body = times_table(json.loads(Path(args.json).read_text()))
    changed = render_page(Path(args.page), NOTEBOOK_TIMES, body)
    print(f"{args.page}: {'updated' if changed else 'unchanged'}")


if __name__ == "__main__":
    main()
