"""The book's Sphinx extension (gmdiff.book_ext) on a small book built in seconds: the build
stamp, the source archive, the chapters' papermill commands, the claim anchors, the verdict
tally and the claims map's colours in light and dark mode; and the table of contents' order
(each paper's overview leads to its chapters).

The small book is a git repository made for the test, with its own ``book/claims.yml``, so
the commit the stamp must show and the counts the tally must show are known only here.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import nbformat
import numpy
import papermill  # noqa: F401 (first: its entry points import gmdiff.papermill_io)
import pytest
import torch
import yaml
from bs4 import BeautifulSoup

import gmdiff
from gmdiff import book_ext, ledger, papermill_io

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: The small book's ledger: (ID, verdict). Its tally is counted independently below.
CLAIMS = [
    ("GS-1", "reproduced"),
    ("GS-2", "partly"),
    ("GMS-1", "partly"),
    ("GMS-2", "not reproduced"),
    ("GMS-10", "reproduced at small scale"),
    ("X-1", "not yet run"),
]

#: The small book's chapter: a real chapter's name (its study's full profile trains on MNIST,
#: which is not shipped), with a notebook of its own.
CHAPTER = "gs_teleportation"

PAGES = {
    "conf.py": (
        'extensions = ["myst_nb", "gmdiff.book_ext"]\n'
        'html_theme = "sphinx_book_theme"\n'
        'root_doc = "book/intro"\n'
        'exclude_patterns = ["_build", "README.md"]\n'
        'nb_execution_mode = "off"\n'
    ),
    "README.md": "# The small book\n",
    "_config.yml": "repository:\n  url: https://example.org/gmdiff\n",
    "book/intro.md": (
        "# Intro\n\n```{claims-map}\n```\n\n```{verdict-tally}\n```\n\n"
        f"```{{toctree}}\ngm_sgm\nclaims\n../chap\n../notebooks/{CHAPTER}\n```\n"
    ),
    "book/gm_sgm.md": "# GM-SGM\n\n```{claims-table} GMS\n:brief:\n```\n",
    "book/claims.md": (
        "# Ledger\n\n(ledger-gs)=\n## GS\n\n```{claims-table} GS\n```\n\n"
        "(ledger-gms)=\n## GMS\n\n```{claims-table} GMS\n```\n\n"
        "(ledger-x)=\n## X\n\n```{claims-table} X\n```\n"
    ),
    "chap.md": "(chap)=\n# A chapter\n\nThe verdict: {claim}`GMS-2`.\n",
    f"notebooks/{CHAPTER}.py": "# %% [markdown]\n# # Teleportation\n\n# %%\nprint(1)\n",
    f"notebooks/{CHAPTER}.ipynb": nbformat.writes(
        nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell("# Teleportation\n\nText."),
                nbformat.v4.new_code_cell("print(1)"),
            ],
            metadata={"language_info": {"name": "python"}},
        )
    ),
    "results/notebook_times.json": json.dumps(
        {
            "machine": {"cpus": 2},
            "notebooks": {f"notebooks/{CHAPTER}.py": {"seconds": 123.4}},
            "run": {"workers": 2},
        }
    ),
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _make_book(src: Path, git: bool = True) -> None:
    """The small book's files at ``src``, committed to a new git repository (``git``)."""
    for name, text in PAGES.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(text, encoding="utf-8")
    rows = [
        {
            "id": cid,
            "claim": f"claim {cid}",
            "chapters": ["chap"],
            "profile": "ci",
            "verdict": v,
            "reason": f"reason of {cid}",
        }
        for cid, v in CLAIMS
    ]
    (src / "book" / "claims.yml").write_text(yaml.safe_dump({"claims": rows}), encoding="utf-8")
    if not git:
        return
    _git(src, "init", "-q")
    _git(src, "add", ".")
    _git(src, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "small book")


def _build(src: Path) -> Path:
    """Build (or update) the small book's HTML with warnings as errors."""
    out = src / "_build" / "html"
    # no repository above the small book's folder counts as its checkout
    ceiling = str(src.parent)
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "GIT_CEILING_DIRECTORIES": ceiling}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html", str(src), str(out)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def small_book(tmp_path_factory) -> tuple[Path, Path]:
    """(source, html) of the small book."""
    src = tmp_path_factory.mktemp("small_book")
    _make_book(src)
    return src, _build(src)


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


# --- build stamp ---------------------------------------------------------------------


def test_stamp_reads_the_checkout_and_the_environment(tmp_path, monkeypatch):
    (tmp_path / "f.txt").write_text("a")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1000000000")
    stamp = book_ext.build_stamp(tmp_path)
    assert stamp["commit"] == _git(tmp_path, "rev-parse", "HEAD")
    assert re.fullmatch(r"[0-9a-f]{40}", stamp["commit"])
    assert stamp["commit_date"] == _git(tmp_path, "show", "-s", "--format=%cd", "--date=short")
    assert stamp["built"] == "2001-09-09 01:46 UTC"  # 10^9 s after 1970-01-01 00:00 UTC
    assert stamp["python"] == platform.python_version() == sys.version.split()[0]
    assert (stamp["torch"], stamp["numpy"]) == (torch.__version__, numpy.__version__)
    assert stamp["gmdiff"] == gmdiff.__version__
    (tmp_path / "f.txt").write_text("b")  # a tracked file edited: the stamp says so
    assert book_ext.build_stamp(tmp_path)["commit"].endswith(" + uncommitted changes")
    bare = tmp_path / "not_git"
    bare.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert book_ext.build_stamp(bare)["commit"].startswith("unknown")


def _pages(html: Path) -> list[Path]:
    """The small book's pages: three in book/, the chapter, chap.md's and the search page."""
    pages = sorted(html.glob("book/*.html")) + [html / "chap.html", html / "search.html"]
    return [*pages, html / "notebooks" / f"{CHAPTER}.html"]


def test_every_page_carries_the_stamp_of_its_build(small_book):
    src, html = small_book
    commit = _git(src, "rev-parse", "HEAD")
    for page in _pages(html):
        stamp = _soup(page).select("p.build-stamp")
        assert len(stamp) == 1, page.name
        text = " ".join(stamp[0].get_text().split())
        # _build/ is untracked, so the small book's checkout is clean
        assert f"commit {commit} (" in text
        assert f"Python {platform.python_version()}," in text
        assert f"torch {torch.__version__}, numpy {numpy.__version__}," in text
        assert text.endswith(f"gmdiff {gmdiff.__version__}.")


def test_an_update_build_restamps_the_pages_it_did_not_change(tmp_path):
    """Sphinx rewrites only changed pages unless an HTML config value changed; the stamp
    is one, so an unchanged page does not keep the previous commit."""
    _make_book(tmp_path)
    html = _build(tmp_path)
    first = _git(tmp_path, "rev-parse", "HEAD")
    assert first in _soup(html / "book" / "intro.html").select_one("p.build-stamp").get_text()
    (tmp_path / "chap.md").write_text(PAGES["chap.md"] + "\nMore.\n", encoding="utf-8")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "more")
    second = _git(tmp_path, "rev-parse", "HEAD")
    html = _build(tmp_path)
    for page in ("book/intro.html", "book/claims.html", "chap.html"):
        stamp = _soup(html / page).select_one("p.build-stamp").get_text()
        assert second in stamp and first not in stamp, page


# --- source archive ------------------------------------------------------------------


def test_every_page_links_the_source_archive_of_its_commit(small_book):
    src, html = small_book
    commit = _git(src, "rev-parse", "HEAD")
    archive = html / "_downloads" / f"gmdiff-{commit[:12]}.tar.gz"
    with tarfile.open(archive, "r:gz") as tar:  # a valid tar.gz of the commit's files
        names = tar.getnames()
        readme = tar.extractfile(f"gmdiff-{commit[:12]}/README.md").read().decode()
    assert readme == PAGES["README.md"]
    assert f"gmdiff-{commit[:12]}/notebooks/{CHAPTER}.py" in names
    assert not any("_build" in n for n in names)  # untracked output is not in it
    for page in _pages(html):
        line = _soup(page).select("p.source-download")
        assert len(line) == 1, page.name
        link = line[0].find("a")
        assert link.get_text() == "Download the source of this build"
        assert (page.parent / link["href"]).resolve() == archive.resolve(), page.name
        text = " ".join(line[0].get_text().split())
        assert text.endswith(f"of commit {commit[:12]}). The repository.")  # its _config.yml's
        assert line[0].find_all("a")[-1]["href"] == "https://example.org/gmdiff"


def test_the_archive_holds_the_commit_not_uncommitted_edits(tmp_path):
    (tmp_path / "README.md").write_text("committed\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    (tmp_path / "README.md").write_text("edited\n")
    commit = _git(tmp_path, "rev-parse", "HEAD")
    target = book_ext.write_source_archive(tmp_path, commit, tmp_path / "out")
    assert target.name == f"gmdiff-{commit[:12]}.tar.gz"
    with tarfile.open(target, "r:gz") as tar:
        assert tar.extractfile(f"gmdiff-{commit[:12]}/README.md").read() == b"committed\n"
    stamp = book_ext.build_stamp(tmp_path)  # the footer says the edits are not in it
    line = book_ext.source_html(stamp, "x.tar.gz")
    assert stamp["commit"].endswith(book_ext.DIRTY)
    assert f"commit <code>{commit[:12]}</code>; the uncommitted changes are not in it" in line
    with_repo = book_ext.source_html(stamp, "x.tar.gz", "https://example.org/gmdiff")
    assert with_repo.endswith('<a href="https://example.org/gmdiff">The repository</a>.</p>')


def test_a_book_built_outside_git_has_no_archive_and_says_why(tmp_path):
    _make_book(tmp_path, git=False)
    (tmp_path / "_config.yml").unlink()  # and it names no repository
    html = _build(tmp_path)
    assert list((html / "_downloads").glob("*.tar.gz")) == []
    for page in (html / "chap.html", html / "notebooks" / f"{CHAPTER}.html"):
        line = _soup(page).select_one("p.source-download")
        assert line.find("a") is None
        text = " ".join(line.get_text().split())
        assert text == "No source download: the build's commit is unknown (not a git checkout)."


def test_the_repository_is_the_one_the_book_config_names(tmp_path):
    assert book_ext.repository_url(tmp_path) == ""  # no _config.yml
    (tmp_path / "_config.yml").write_text("title: t\nrepository:\n  branch: main\n")
    assert book_ext.repository_url(tmp_path) == ""  # not Jupyter Book's default URL
    (tmp_path / "_config.yml").write_text("repository:\n  url: https://example.org/r\n")
    assert book_ext.repository_url(tmp_path) == "https://example.org/r"


# --- chapters: papermill commands, cold time, files -----------------------------------


def test_a_chapter_page_shows_how_to_run_it_and_its_files(small_book):
    src, html = small_book
    page = html / "notebooks" / f"{CHAPTER}.html"
    title = _soup(page).select_one("article h1")
    block = title.find_next_sibling()
    assert block is not None and "chapter-run" in block["class"]  # right under the title
    commands = [c.get_text() for c in block.find_all("code")]
    run = f"papermill notebooks/{CHAPTER}.py out.ipynb -p profile"
    assert commands == [f"{run} ci", f"{run} full -p data_dir <folder>"]
    text = " ".join(block.get_text(" ").split())
    assert "cold: 123 s (2 min) on the 2-core CI machine (two chapters at a time). Its" in text
    links = {a.get_text(): (page.parent / a["href"]).resolve() for a in block.find_all("a")}
    assert list(links) == [f"{CHAPTER}.py", f"{CHAPTER}.ipynb"]
    for name, target in links.items():  # copies of the chapter's files
        assert target.parent == (html / "_downloads" / "notebooks").resolve()
        assert target.read_bytes() == (src / "notebooks" / name).read_bytes()


def test_pages_that_are_not_chapters_have_no_run_block(small_book):
    _, html = small_book
    others = [p for p in _pages(html) if p.parent.name != "notebooks"]
    assert len(others) == 5
    for page in others:
        assert _soup(page).select("div.chapter-run") == [], page.name


def test_papermill_commands_follow_the_studies():
    run = "papermill notebooks/{}.py out.ipynb -p profile"
    # exact computations: the full profile needs no data
    assert book_ext.papermill_commands("gs_closed_forms") == [
        run.format("gs_closed_forms") + " ci",
        run.format("gs_closed_forms") + " full",
    ]
    # CIFAR-10 at paper scale: the reader's folder
    assert book_ext.papermill_commands("gm_sgm_tables")[1].endswith(" full -p data_dir <folder>")
    assert book_ext.papermill_commands("no_study") == [run.format("no_study") + " ci"]
    # every parameter a command passes is one its chapter's parameters cell assigns (papermill
    # refuses any other, gmdiff.papermill_io)
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        declared = papermill_io.declared_parameters(nbformat.read(nb, as_version=4))
        for command in book_ext.papermill_commands(nb.stem):
            assert set(re.findall(r"-p (\w+)", command)) <= set(declared), command


def test_cold_time_reads_the_notebook_times():
    times = json.loads((ROOT / "results" / "notebook_times.json").read_text(encoding="utf-8"))
    seconds = times["notebooks"]["notebooks/gmd_forward.py"]["seconds"]
    cold = book_ext.cold_time(times, "gmd_forward")
    assert cold.startswith(f"cold: {seconds:.0f} s on the {times['machine']['cpus']}-core CI")
    assert book_ext.cold_time(times, "no_such_chapter") == ""
    one = {"notebooks": {"notebooks/a.py": {"seconds": 9.6}}, "run": {"workers": 1}}
    assert book_ext.cold_time(one, "a") == "cold: 10 s on the CI machine (one chapter at a time)"


# --- claim anchors -------------------------------------------------------------------


def test_ledger_rows_are_anchors_and_every_link_reaches_its_row(small_book):
    _, html = small_book
    ledger_page = _soup(html / "book" / "claims.html")
    for cid, verdict in CLAIMS:
        row = ledger_page.find("tr", id=f"claim-{cid}")
        assert row is not None, cid
        cells = [td.get_text(" ", strip=True) for td in row.find_all("td")]
        assert cells[0] == cid and cells[2].startswith(verdict), cells
    # the chapter's verdict line
    link = _soup(html / "chap.html").select_one("article a[href*='claims.html']")
    assert link["href"] == "book/claims.html#claim-GMS-2" and link.get_text() == "GMS-2"
    # the intro's map: one cell per claim, each linking to its own row
    cells = _soup(html / "book" / "intro.html").select("table.claims-map td a")
    assert [a.get_text() for a in cells] == [cid.split("-")[1] for cid, _ in CLAIMS]
    assert [a["href"] for a in cells] == [f"claims.html#claim-{cid}" for cid, _ in CLAIMS]
    # the overview's brief table: IDs link to the rows
    ids = _soup(html / "book" / "gm_sgm.html").select("div.claims-table td:first-child a")
    assert [a["href"] for a in ids] == [
        "claims.html#claim-GMS-1",
        "claims.html#claim-GMS-2",
        "claims.html#claim-GMS-10",
    ]


# --- verdict tally -------------------------------------------------------------------


def test_tally_counts_the_ledger():
    rows = yaml.safe_load((ROOT / "book" / "claims.yml").read_text(encoding="utf-8"))["claims"]
    expected = Counter((r["id"].rsplit("-", 1)[0], r["verdict"]) for r in rows)
    counts = ledger.tally(ledger.load())
    assert set(counts) == set(ledger.PAPERS)
    got = Counter({(p, v): n for p, c in counts.items() for v, n in c.items()})
    assert got == expected
    assert sum(got.values()) == len(rows)


def test_intro_tally_is_computed_from_the_ledger(small_book):
    _, html = small_book
    table = _soup(html / "book" / "intro.html").select_one("div.verdict-tally table")
    head = [th.get_text(strip=True) for th in table.select("thead th")]
    assert head == ["verdict", "GS", "GMS", "SMD", "GMD", "X", "all"]
    body = {
        tr.find("td").get_text(strip=True): [int(td.get_text()) for td in tr.find_all("td")[1:]]
        for tr in table.select("tbody tr")
    }
    # the small book's CLAIMS counted by hand; "inconclusive" (no claim) is left out
    assert body == {
        "reproduced": [1, 0, 0, 0, 0, 1],
        "reproduced at small scale": [0, 1, 0, 0, 0, 1],
        "partly": [1, 1, 0, 0, 0, 2],
        "not reproduced": [0, 1, 0, 0, 0, 1],
        "not yet run": [0, 0, 0, 0, 1, 1],
        "claims": [2, 3, 0, 0, 1, len(CLAIMS)],
    }
    assert list(body)[:-1] == [v for v in ledger.VERDICTS if v != "inconclusive"]


# --- the map's colours in light and dark mode ----------------------------------------


def _luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour (channels 0-255)."""
    lin = [
        c / 255 / 12.92 if c / 255 <= 0.04045 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb
    ]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(fg: tuple[float, ...], bg: tuple[float, ...]) -> float:
    """WCAG 2.1 contrast ratio; a translucent ``fg`` is first laid over ``bg``."""
    a = fg[3] if len(fg) > 3 else 1.0
    fg = tuple(a * f + (1 - a) * b for f, b in zip(fg[:3], bg[:3], strict=True))
    hi, lo = sorted((_luminance(fg), _luminance(bg[:3])), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_matches_known_values():
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((119, 119, 119), (255, 255, 255)) == pytest.approx(4.48, abs=0.01)  # #777
    assert contrast((0, 0, 0, 0.0), (255, 255, 255)) == pytest.approx(1.0)


MEASURE = r"""
<script>
window.addEventListener('load', () => setTimeout(() => {
  const rows = [];
  document.querySelectorAll('p.claims-legend span, table.claims-map td a').forEach(el => {
    const box = el.tagName === 'A' ? el.parentElement : el;
    rows.push([el.textContent, getComputedStyle(el).color,
               getComputedStyle(box).backgroundColor]);
  });
  const pre = document.createElement('pre');
  pre.id = 'gmdiff-colours';
  pre.textContent = JSON.stringify({theme: document.documentElement.dataset.theme, rows});
  document.body.appendChild(pre);
}, 300));
</script>
"""


def _rgba(css: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in re.findall(r"[\d.]+", css))
    assert len(values) in (3, 4), css
    return values


def measure_in_chromium(page: Path, script: str, pre_id: str, *flags: str) -> dict:
    """The JSON that ``script`` (inserted before ``</body>`` of a copy of ``page``) writes
    into ``<pre id=pre_id>``, as headless Chromium runs it with ``flags``; the copy is
    removed afterwards."""
    probe = page.with_name(f"{page.stem}.{pre_id}.html")
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", script + "</body>"),
                     encoding="utf-8")  # fmt: skip
    try:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--virtual-time-budget=10000", *flags, "--dump-dom", probe.as_uri()],
            check=False, capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip
    finally:
        probe.unlink()
    found = re.search(rf'<pre id="{pre_id}"[^>]*>(.*?)</pre>', dom, re.DOTALL)
    assert found, f"{page.name}: the measuring script did not run"
    return json.loads(BeautifulSoup(found.group(1), "html.parser").get_text())


def map_colours(page: Path, dark: bool, extra_css: str = "") -> dict:
    """The map's text and background colours as Chromium computes them, with the system
    set to dark or light (``prefers-color-scheme``, which the theme follows by default)."""
    style = f"<style>{extra_css}</style>" if extra_css else ""
    scheme = f"--blink-settings=preferredColorScheme={0 if dark else 1}"
    return measure_in_chromium(page, style + MEASURE, "gmdiff-colours", scheme)


def unreadable(result: dict) -> list:
    """The map's labels under WCAG AA's 4.5:1 for text."""
    ratios = [(t, round(contrast(_rgba(fg), _rgba(bg)), 2)) for t, fg, bg in result["rows"]]
    assert all(_rgba(bg)[3:] in ((), (1.0,)) for _, _, bg in result["rows"]), result
    return [r for r in ratios if r[1] < 4.5]


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_map_and_legend_are_readable_in_light_and_dark_mode(small_book):
    _, html = small_book
    intro = html / "book" / "intro.html"
    for dark in (False, True):
        result = map_colours(intro, dark)
        assert result["theme"] == ("dark" if dark else "light")
        legend = [t for t, _, _ in result["rows"]][-len(book_ext.COLOURS) :]
        assert legend == list(book_ext.COLOURS)
        assert len(result["rows"]) == len(CLAIMS) + len(book_ext.COLOURS)
        assert not unreadable(result), (dark, unreadable(result))
    # the check has teeth: legend text in the theme's colour (the old CSS) fails in dark mode
    result = map_colours(intro, True, "p.claims-legend span { color: inherit !important; }")
    assert len(unreadable(result)) >= 3


# --- table of contents ---------------------------------------------------------------


def _toc_files(entries: list[dict]) -> list[str]:
    out = []
    for e in entries:
        out += [e["file"], *_toc_files(e.get("sections", []))]
    return out


def test_each_overview_leads_to_its_chapters():
    """Each paper's overview holds, as its sections, the chapters its claims cite (besides
    the cross-paper ``x_`` chapters), so the reading order (and "Next") goes overview ->
    its first chapter -> ... -> the next overview."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    chapters = [c for part in toc["parts"] for c in part["chapters"]]
    order = _toc_files(chapters)
    assert len(order) == len(set(order))
    notebooks = {f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert notebooks <= set(order)
    claims = ledger.load()
    by_file = {c["file"]: c for c in chapters}
    for prefix, (page, _) in ledger.PAPERS.items():
        if prefix == "X":
            continue
        entry = by_file[f"book/{page}"]
        sections = [s["file"] for s in entry.get("sections", [])]
        cited = {ch for c in ledger.of_paper(claims, prefix) for ch in c.chapters}
        cited = {"notebooks/" + ch.replace("-", "_") for ch in cited if not ch.startswith("x-")}
        assert set(sections) == cited, prefix
        assert order[order.index(entry["file"]) + 1] == sections[0]
