"""The book as a reader sees it: build it, then check the stored notebooks and the HTML.

Fails on: a stderr / warning / error output in a stored notebook; a math delimiter or TeX
command left as text in a page (MathJax renders only what sits inside the math elements
that MyST emits); a NaN cell in a displayed table; a claim ID printed next to a verdict
that is not the ledger's; a page without the build stamp; a claims-ledger row without its
anchor ``claim-<ID>`` or a link to a claim that reaches none; a paper's overview whose
"Next" is not its first chapter; and, measured in headless Chromium at a 1400 px window (the
width the book was reviewed at; its content column is then about 770 px): a table wider
than the content column, or an image shown at under 90% of its natural width. The theme
scales every image down to the column, so "under 90%" means the figure was drawn wider
than the column and its labels shrink below the size they were set at; and the claims
map's labels under a 4.5:1 contrast with the system in light or in dark mode.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from bs4 import BeautifulSoup
from test_book_ext import map_colours, measure_in_chromium, unreadable

from gmdiff import ledger

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
VERDICT_RE = "|".join(sorted(map(re.escape, ledger.VERDICTS), key=len, reverse=True))
ID_RE = r"\b(?:GS|GMS|SMD|GMD|X)-\d+\b"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_ledger_rejects_a_bad_verdict(tmp_path):
    text = (ROOT / "book" / "claims.yml").read_text(encoding="utf-8")
    (tmp_path / "claims.yml").write_text(
        text.replace("verdict: partly", "verdict: mostly", 1), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="mostly"):
        ledger.load(tmp_path / "claims.yml")


def test_every_claim_of_claims_md_is_in_the_ledger():
    claims_md = ROOT.parent / "shared" / "CLAIMS.md"
    if not claims_md.is_file():
        pytest.skip("../shared/CLAIMS.md (the project's claim list) is not beside this checkout")
    ids = set(re.findall(ID_RE, claims_md.read_text(encoding="utf-8")))
    assert ids and ids <= set(ledger.load())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebook_has_no_warning_or_error_output(path):
    nb = nbformat.read(path, as_version=4)
    bad = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") or "".join(
                str(v) for k, v in out.get("data", {}).items() if k.startswith("text/")
            )
            if out.output_type == "error" or out.get("name") == "stderr":
                bad.append((i, out.output_type, text[:120]))
            elif re.search(r"\w+Warning\b|Traceback|<\w+(\.\w+)+ (object )?at 0x", text):
                bad.append((i, "warning-like text", text[:120]))
    assert not bad, f"{path.name}: {bad}"


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    """The book built from the stored notebooks, with Sphinx warnings as errors (or, when
    ``GMDIFF_BOOK_HTML`` names a folder, the book already built there, e.g. ``_build/html``
    after ``jupyter-book build . --warningiserror``)."""
    if os.environ.get("GMDIFF_BOOK_HTML"):
        return Path(os.environ["GMDIFF_BOOK_HTML"]).resolve()
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run(
        [
            str(jb),
            "build",
            str(ROOT),
            "--path-output",
            str(out),
            "--warningiserror",
            "--keep-going",
            "--all",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "_build" / "html"


def _pages(html: Path) -> list[Path]:
    pages = (p for d in ("book", "notebooks") for p in (html / d).glob("*.html"))
    return sorted(p for p in pages if not p.name.endswith(".measure.html"))


def _text_outside_code_and_math(page: Path) -> str:
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    article = soup.find("article") or soup
    for tag in article.select("script, style, pre, code, .math, .highlight, .cell_input"):
        tag.decompose()
    return article.get_text(" ")


def test_pages_have_no_unrendered_math(html):
    bad = {}
    for page in _pages(html):
        text = _text_outside_code_and_math(page)
        hits = re.findall(r".{0,30}(?:\$|\\[A-Za-z]{2,}).{0,30}", text)
        if hits:
            bad[page.name] = hits[:3]
    assert not bad, bad


def test_displayed_tables_have_no_nan(html):
    bad = {}
    for page in _pages(html):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        cells = [td.get_text(strip=True) for td in soup.select("td, th")]
        nans = [c for c in cells if c.lower() in {"nan", "<na>", "none"}]
        if nans:
            bad[page.name] = len(nans)
    assert not bad, bad


def test_each_claim_has_one_verdict_on_every_page(html):
    claims = ledger.load()
    bad = []
    for page in _pages(html) + [html / "index.html"]:
        text = " ".join(_text_outside_code_and_math(page).split())
        pattern = rf"({ID_RE})\s*(?:\([^)]{{0,80}}\))?\s*[:,]?\s*({VERDICT_RE})\b"
        for cid, verdict in re.findall(pattern, text):
            if cid in claims and claims[cid].verdict != verdict:
                bad.append((page.name, cid, verdict, claims[cid].verdict))
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for row in soup.select("tr"):
            cells = row.find_all("td")
            if cells and re.fullmatch(ID_RE, cells[0].get_text(strip=True)):
                cid = cells[0].get_text(strip=True)
                said = {s.get_text(strip=True) for s in row.find_all("strong")}
                said &= set(ledger.VERDICTS)
                if cid in claims and said - {claims[cid].verdict}:
                    bad.append((page.name, cid, said, claims[cid].verdict))
    assert not bad, bad


MEASURE = r"""
<script>
window.addEventListener('load', () => setTimeout(() => {
  const article = document.querySelector('article') || document.body;
  const cs = getComputedStyle(article);
  const col = article.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
  const out = {col: col, tables: [], images: []};
  article.querySelectorAll('table').forEach(t => {
    // a table folded away (a collapsed cell) is not shown, so it cannot overflow
    if (t.offsetParent !== null && t.innerText.trim() && t.scrollWidth > col + 2)
      out.tables.push([t.scrollWidth, t.innerText.replace(/\s+/g, ' ').slice(0, 60)]);
  });
  article.querySelectorAll('img').forEach(im => {
    if (im.offsetParent !== null && im.naturalWidth > 0 &&
        im.clientWidth < 0.9 * im.naturalWidth)
      out.images.push([im.src.split('/').pop(), im.clientWidth, im.naturalWidth]);
  });
  const pre = document.createElement('pre');
  pre.id = 'gmdiff-measure';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}, 300));
</script>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_tables_and_figures_fit_the_column(html):
    bad = {}
    for page in _pages(html):
        result = measure_in_chromium(page, MEASURE, "gmdiff-measure", "--hide-scrollbars",
                                     "--window-size=1400,1000")  # fmt: skip
        assert 600 < result["col"] < 900, f"unexpected content column {result['col']} px"
        if result["tables"] or result["images"]:
            bad[page.name] = {k: result[k] for k in ("tables", "images") if result[k]}
    assert not bad, bad


def test_every_page_has_the_build_stamp(html):
    missing = [p.name for p in _pages(html) if len(_soup(p).select("p.build-stamp")) != 1]
    assert not missing, missing


def test_every_claim_is_an_anchor_that_the_links_reach(html):
    claims = ledger.load()
    ledger_page = _soup(html / "book" / "claims.html")
    anchors = {tr["id"] for tr in ledger_page.select("tr[id^='claim-']")}
    assert anchors == {f"claim-{cid}" for cid in claims}
    bad, n = [], 0
    for page in _pages(html):
        for a in _soup(page).select("a[href*='claims.html#']"):
            n += 1
            target = a["href"].split("#", 1)[1]
            if target not in anchors and not target.startswith("ledger-"):
                bad.append((page.name, a["href"]))
    assert n > len(claims) and not bad, bad
    cells = _soup(html / "book" / "intro.html").select("table.claims-map td a")
    assert [a["href"] for a in cells] == [f"claims.html#claim-{cid}" for cid in claims]


def test_each_overview_is_followed_by_its_first_chapter(html):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    for entry in toc["parts"][0]["chapters"]:
        page = html / (entry["file"] + ".html")
        nxt = _soup(page).select_one("a.right-next")["href"]
        assert nxt == "../" + entry["sections"][0]["file"] + ".html", (page.name, nxt)


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_claims_map_is_readable_in_light_and_dark_mode(html):
    for dark in (False, True):
        result = map_colours(html / "book" / "intro.html", dark)
        assert result["theme"] == ("dark" if dark else "light")
        assert len(result["rows"]) == len(ledger.load()) + len(ledger.VERDICTS)
        assert not unreadable(result), (dark, unreadable(result))


def _soup(page: Path) -> BeautifulSoup:
    return BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
