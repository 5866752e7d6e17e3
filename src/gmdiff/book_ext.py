"""Sphinx extension of the book: verdicts rendered from the one ledger, author-year references.

Loaded by ``_config.yml`` (``sphinx.extra_extensions``). It adds

* ``{claim}`GMS-5``` - a role that prints the claim's ID (a link to its row of the ledger,
  the anchor ``claim-GMS-5``) and its verdict, read from ``book/claims.yml``; chapters use it
  for their verdict lines;
* ``{claims-table} GMS`` - a paper's ledger rows: ID, claim (with the chapters that check
  it), verdict (with the profile that ran) and reason. On the ledger page each row is the
  anchor ``claim-<ID>``; with ``:brief:`` (the overview pages) the reason is left out and
  the IDs link to those anchors;
* ``{claims-map}`` - the intro's map: one coloured cell per claim, paper by paper, each a
  link to its row;
* ``{verdict-tally}`` - how many claims have each verdict, paper by paper (the intro);
* a build stamp in every page's footer: the commit, its date, the build date and the
  versions of Python, torch, numpy and gmdiff, read from the environment at build time;
* the source of that commit, ``git archive``-d at build time into
  ``_downloads/gmdiff-<commit>.tar.gz`` and linked from every page's footer (with the
  repository, when ``_config.yml`` names ``repository.url``);
* on each chapter page (built from ``notebooks/<chapter>.ipynb``), under its title: the
  papermill commands that run it (``ci`` and, where its study has one, ``full``), its cold
  time from ``results/notebook_times.json`` and links to its ``.py`` and stored ``.ipynb``,
  copied to ``_downloads/notebooks/``;
* ``{errata-list} X-3`` - the errata, paper by paper;
* the pybtex style ``gmdiff``: the bibliography labelled "Author et al., year", as the text
  cites it (``bibtex_reference_style: author_year``).
"""

from __future__ import annotations

import datetime
import html
import importlib
import json
import os
import platform
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import ClassVar

import yaml
from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList
from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx import addnodes

from gmdiff import ledger, study

#: Cell colours of the map, one per verdict: blues for reproduced, oranges against, grey and
#: white for no decision (a blue-orange scale reads under the common colour-vision
#: deficiencies; each cell's tooltip also names its verdict).
COLOURS = {
    "reproduced": "#4393c3",
    "reproduced at small scale": "#b8d9ee",
    "partly": "#fdb863",
    "not reproduced": "#e66101",
    "inconclusive": "#bababa",
    "not yet run": "#ffffff",
}


def _claims(env) -> dict[str, ledger.Claim]:
    """The ledger; every page that shows part of it depends on the file."""
    path = Path(env.srcdir) / "book" / "claims.yml"
    env.note_dependency(str(path))
    return ledger.load(path)


def claim_anchor(cid: str) -> str:
    """The HTML id of a claim's row on the ledger page (``claim-GMS-6``)."""
    return f"claim-{cid}"


def _label(cid: str) -> str:
    """The Sphinx label of a claim's row (labels are lower-case): ``claim-gms-6``."""
    return claim_anchor(cid).lower()


def claim_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{claim}`ID``` -> "ID: **verdict**", the ID linking to its row of the ledger."""
    env = inliner.document.settings.env
    claims = _claims(env)
    cid = text.strip()
    if cid not in claims:
        msg = inliner.reporter.error(f"unknown claim {cid!r} (not in book/claims.yml)")
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    c = claims[cid]
    ref = addnodes.pending_xref(
        rawtext,
        nodes.inline(cid, cid),
        refdomain="std",
        reftype="ref",
        reftarget=_label(cid),
        refexplicit=True,
        refwarn=True,
        refdoc=env.docname,
    )
    verdict = nodes.strong(c.verdict, c.verdict, classes=["verdict"])
    return [ref, nodes.Text(": "), verdict], []


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


class ClaimsTable(Directive):
    """A paper's rows of the ledger as a table (MyST markdown, so math and refs render)."""

    required_arguments = 1
    option_spec: ClassVar[dict] = {"brief": directives.flag}

    def run(self):
        env = self.state.document.settings.env
        rows = ledger.of_paper(_claims(env), self.arguments[0])
        if not rows:
            raise self.error(f"no claims with prefix {self.arguments[0]!r}")
        brief = "brief" in self.options
        head = ["ID", "claim", "verdict"] + ([] if brief else ["reason"])
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for c in rows:
            where = ", ".join(f"{{ref}}`{ch} <{ch}>`" for ch in c.chapters)
            claim = _cell(c.claim) + (f" (checked in {where})" if where else "")
            verdict = f"**{c.verdict}**" + (f" ({c.profile})" if c.profile else "")
            cid = f"{{ref}}`{c.id} <{_label(c.id)}>`" if brief else c.id
            cells = [cid, claim, verdict] + ([] if brief else [_cell(c.reason)])
            lines.append("| " + " | ".join(cells) + " |")
        node = nodes.container(classes=["claims-table"])
        self.state.nested_parse(StringList(lines, source="book/claims.yml"), 0, node)
        if not brief:
            self._anchor_rows(node, [c.id for c in rows])
        return [node]

    def _anchor_rows(self, node, ids: list[str]) -> None:
        """Make each body row the target ``claim-<ID>`` (label ``claim-<id>``) that the
        role, the map and the overview tables link to."""
        body = next(node.findall(nodes.tbody))
        document = self.state.document
        for row, cid in zip(body.findall(nodes.row), ids, strict=True):
            row["ids"].append(claim_anchor(cid))
            row["names"].append(_label(cid))
            document.note_explicit_target(row)


class ErrataList(Directive):
    """The errata of a claim (X-3), paper by paper, as lists (MyST markdown); ``:paper:``
    keeps one paper's (its list without a heading, for its overview page)."""

    required_arguments = 1
    option_spec: ClassVar[dict] = {"paper": directives.unchanged}

    def run(self):
        env = self.state.document.settings.env
        claim = _claims(env).get(self.arguments[0])
        if claim is None or not claim.errata:
            raise self.error(f"no errata listed for {self.arguments[0]!r}")
        only = self.options.get("paper")
        lines = []
        for key, title in ledger.PAPERS.values():
            items = claim.errata.get(key, ())
            if items and only in (None, key):
                lines += ["", f"**{title}** ({len(items)})", ""] if only is None else [""]
                lines += [f"- {' '.join(item.split())}" for item in items]
        if not lines:
            raise self.error(f"no errata of paper {only!r} under {self.arguments[0]}")
        node = nodes.container(classes=["errata-list"])
        self.state.nested_parse(StringList(lines, source="book/claims.yml"), 0, node)
        return [node]


class ClaimsMap(Directive):
    """Every claim as a coloured cell, one row per paper, with a legend (HTML only)."""

    def run(self):
        env = self.state.document.settings.env
        claims = _claims(env)
        uri = env.app.builder.get_relative_uri(env.docname, "book/claims")
        cell = '<td style="background:{bg}"><a href="{href}" title="{tip}">{n}</a></td>'
        out = ['<table class="claims-map"><tbody>']
        for prefix, (_, title) in ledger.PAPERS.items():
            cells = [
                cell.format(
                    bg=COLOURS[c.verdict],
                    href=f"{uri}#{claim_anchor(c.id)}",
                    n=c.number,
                    tip=html.escape(f"{c.id}: {c.verdict}. {c.claim}", quote=True),
                )
                for c in ledger.of_paper(claims, prefix)
            ]
            out.append(f"<tr><th>{html.escape(title)} ({prefix}-)</th>{''.join(cells)}</tr>")
        out.append("</tbody></table>")
        legend = "".join(f'<span style="background:{bg}">{v}</span>' for v, bg in COLOURS.items())
        out.append(f'<p class="claims-legend">{legend}</p>')
        return [nodes.raw("", "\n".join(out), format="html")]


class VerdictTally(Directive):
    """How many claims have each verdict: one row per verdict (those no claim has are left
    out), one column per paper (its ID prefix, as the map names it) and the totals (MyST
    table)."""

    def run(self):
        env = self.state.document.settings.env
        counts = ledger.tally(_claims(env))
        total = sum(counts.values(), Counter())
        columns = [*counts.values(), total]
        lines = ["| verdict | " + " | ".join([*ledger.PAPERS, "all"]) + " |"]
        lines.append("|---|" + "---:|" * len(columns))
        for v in (v for v in ledger.VERDICTS if total[v]):
            lines.append(f"| {v} | " + " | ".join(str(n[v]) for n in columns) + " |")
        sums = [str(sum(n.values())) for n in columns]
        lines.append("| **claims** | " + " | ".join(sums) + " |")
        node = nodes.container(classes=["verdict-tally"])
        self.state.nested_parse(StringList(lines, source="book/claims.yml"), 0, node)
        return [node]


def _version(module: str) -> str:
    """A module's ``__version__`` ("not installed" when it cannot be imported)."""
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return "not installed"


def _git(srcdir: Path, *args: str) -> str:
    cmd = ["git", "-C", str(srcdir), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else ""


#: What the stamp appends to a commit when tracked files differ from it.
DIRTY = " + uncommitted changes"


def build_stamp(srcdir: str | Path) -> dict[str, str]:
    """What built the book, read at build time: the commit of the checkout at ``srcdir``
    (with "+ uncommitted changes" when tracked files differ from it), its date, the build
    date (UTC; ``SOURCE_DATE_EPOCH`` when set) and the versions of Python, torch, numpy and
    gmdiff."""
    srcdir = Path(srcdir)
    commit = _git(srcdir, "rev-parse", "HEAD")
    dirty = bool(_git(srcdir, "status", "--porcelain", "--untracked-files=no"))
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        now = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
    else:
        now = datetime.datetime.now(datetime.UTC)
    return {
        "commit": (commit or "unknown (not a git checkout)") + (DIRTY if dirty else ""),
        "commit_date": _git(srcdir, "log", "-1", "--format=%cs") or "unknown",
        "built": now.strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "gmdiff": _version("gmdiff"),
    }


def stamp_html(stamp: dict[str, str]) -> str:
    """The stamp as one line of the page footer."""
    s = {k: html.escape(v) for k, v in stamp.items()}
    return (
        f'<p class="build-stamp">Built from commit <code>{s["commit"]}</code> '
        f"({s['commit_date']}) on {s['built']} with Python {s['python']}, "
        f"torch {s['torch']}, numpy {s['numpy']}, gmdiff {s['gmdiff']}.</p>"
    )


def archive_name(commit: str) -> str:
    """The source archive's file name: ``gmdiff-<first 12 digits of the commit>.tar.gz``."""
    return f"gmdiff-{commit[:12]}.tar.gz"


def write_source_archive(srcdir: str | Path, commit: str, folder: str | Path) -> Path:
    """``git archive`` of ``commit`` (the files under ``gmdiff-<commit>/``) written as
    :func:`archive_name` into ``folder``. It holds the commit only: uncommitted changes
    that went into the build are not in it (the stamp says when there were some), so what
    a reader downloads is always a state of the repository anyone can check out."""
    name = archive_name(commit)
    target = Path(folder) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"--prefix={name.removesuffix('.tar.gz')}/"
    cmd = ["git", "-C", str(srcdir), "archive", "--format=tar.gz", prefix, "-o", str(target)]
    subprocess.run([*cmd, commit], check=True, capture_output=True, timeout=120)
    return target


def source_html(stamp: dict[str, str], href: str | None, repository: str = "") -> str:
    """The footer line under the stamp: the link to the build's source archive (``href``;
    None when the build has none, and the line says why) and to the repository, if any."""
    commit = stamp["commit"].removesuffix(DIRTY)
    if href is None:
        text = f"No source download: the build's commit is {html.escape(commit)}."
    else:
        text = (
            f'<a href="{html.escape(href)}">Download the source of this build</a> '
            f"(<code>git archive</code> of commit <code>{html.escape(commit[:12])}</code>"
            + ("; the uncommitted changes are not in it" if stamp["commit"].endswith(DIRTY) else "")
            + ")."
        )
    if repository:
        text += f' <a href="{html.escape(repository)}">The repository</a>.'
    return f'<p class="source-download">{text}</p>'


def repository_url(srcdir: str | Path) -> str:
    """``repository.url`` of the book's ``_config.yml`` ("" when it names none). Read from
    the file, not from the theme: Jupyter Book fills the theme's ``repository_url`` with its
    own repository when the book names none."""
    path = Path(srcdir) / "_config.yml"
    book = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return ((book or {}).get("repository") or {}).get("url") or ""


def _chapters(srcdir: Path) -> list[str]:
    """The chapters: ``notebooks/<chapter>.ipynb`` with its ``.py`` beside it."""
    found = sorted((srcdir / "notebooks").glob("*.ipynb"))
    return [p.stem for p in found if p.with_suffix(".py").is_file()]


def papermill_commands(chapter: str) -> list[str]:
    """The commands that run ``chapter`` from the repository root: the ``ci`` profile and,
    where ``configs/studies/<chapter>.yaml`` has one, ``full``, with ``-p data_dir
    <folder>`` where that profile trains on a data set that is not shipped (as
    ``gmdiff.study.Study.open`` demands; other chapters have no use for the parameter)."""
    run = f"papermill notebooks/{chapter}.py out.ipynb -p profile"
    try:
        full = study.read(chapter).get("full")
    except KeyError:  # no study: the chapter has only its parameters cell's defaults
        full = None
    commands = [f"{run} ci"]
    if full is not None:
        data = (full.get("study") or {}).get("data")
        needs_data = data is not None and bool(study.DATASETS[data].howto)
        commands.append(f"{run} full" + (" -p data_dir <folder>" if needs_data else ""))
    return commands


def cold_time(times: dict, chapter: str) -> str:
    """The chapter's cold time, "cold: N s on the 2-core CI machine (two chapters at a time)",
    from the notebook times (``results/notebook_times.json``, as ``gmdiff.nbval_times``
    writes them); "" when the chapter has none."""
    entry = times.get("notebooks", {}).get(f"notebooks/{chapter}.py")
    if entry is None:
        return ""
    cpus = times.get("machine", {}).get("cpus")
    workers = times.get("run", {}).get("workers", 1)
    at_a_time = {1: "one chapter", 2: "two chapters"}.get(workers, f"{workers} chapters")
    machine = f"the {cpus}-core CI machine" if cpus else "the CI machine"
    seconds = entry["seconds"]
    minutes = f" ({seconds / 60:.0f} min)" if seconds >= 120 else ""
    return f"cold: {seconds:.0f} s{minutes} on {machine} ({at_a_time} at a time)"


def chapter_html(chapter: str, commands: list[str], cold: str, hrefs: dict[str, str]) -> str:
    """The block under a chapter's title: how to run it, how long that took cold, and its
    files (``hrefs``: suffix -> link)."""
    lines = "".join(f"<code>{html.escape(c)}</code><br/>" for c in commands)
    files = " · ".join(
        f'<a href="{html.escape(h)}">{html.escape(chapter + suffix)}</a>'
        for suffix, h in hrefs.items()
    )
    return (
        f'<div class="chapter-run"><p>Run this chapter from the repository root:<br/>{lines}'
        f"{html.escape(cold or 'no cold time stored')}. Its files: {files}</p></div>"
    )


def _stamp_config(app, config):
    """The stamp, the archived commit and the chapters' commands and times as HTML-rebuild
    config values: when one differs from the last build's, Sphinx rewrites every page, so
    no page keeps an earlier build's."""
    srcdir = Path(app.srcdir)
    config.gmdiff_build_stamp = build_stamp(srcdir)
    config.gmdiff_commit = _git(srcdir, "rev-parse", "HEAD")
    config.gmdiff_repository = repository_url(srcdir)
    path = srcdir / "results" / "notebook_times.json"
    times = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    config.gmdiff_chapters = {
        f"notebooks/{ch}": [papermill_commands(ch), cold_time(times, ch)]
        for ch in _chapters(srcdir)
    }


def _stamp_page(app, pagename, templatename, context, doctree):
    """Append the stamp and the source line to the theme's footer (sphinx-book-theme's
    ``extra_footer``); on a chapter page, put its block under the title."""
    config, pathto = app.config, context["pathto"]
    commit = config.gmdiff_commit
    href = pathto(f"_downloads/{archive_name(commit)}", 1) if commit else None
    stamp = config.gmdiff_build_stamp
    footer = stamp_html(stamp) + source_html(stamp, href, config.gmdiff_repository)
    context["theme_extra_footer"] = (context.get("theme_extra_footer") or "") + footer
    if pagename in config.gmdiff_chapters and "body" in context:
        commands, cold = config.gmdiff_chapters[pagename]
        hrefs = {s: pathto(f"_downloads/{pagename}{s}", 1) for s in (".py", ".ipynb")}
        block = chapter_html(pagename.removeprefix("notebooks/"), commands, cold, hrefs)
        body = context["body"]
        context["body"] = (
            body.replace("</h1>", "</h1>" + block, 1) if "</h1>" in body else block + body
        )


def _write_downloads(app, exception):
    """After an HTML build: the source archive and the chapters' files in ``_downloads``."""
    if exception is not None or app.builder.format != "html":
        return
    downloads = Path(app.outdir) / "_downloads"
    if app.config.gmdiff_commit:
        write_source_archive(app.srcdir, app.config.gmdiff_commit, downloads)
    (downloads / "notebooks").mkdir(parents=True, exist_ok=True)
    for docname in app.config.gmdiff_chapters:
        for suffix in (".py", ".ipynb"):
            shutil.copy2(Path(app.srcdir) / f"{docname}{suffix}", downloads / f"{docname}{suffix}")


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Ho et al., 2020" (a, b appended when two entries would share one)."""

    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [self._label(e) for e in entries]
        counts = Counter(labels)
        seen: Counter = Counter()
        for label in labels:
            if counts[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label

    @staticmethod
    def _label(entry) -> str:
        people = entry.persons.get("author", [])
        names = [" ".join(p.last_names) or " ".join(p.first_names) for p in people]
        names = [n.replace("{", "").replace("}", "") for n in names]
        who = f"{names[0]} et al." if len(names) > 2 else " and ".join(names) or entry.key
        return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearStyle(PlainStyle):
    """pybtex's plain style (sorted by author, year, title) with author-year labels."""

    default_label_style = "gmdiff_author_year"


register_plugin("pybtex.style.labels", "gmdiff_author_year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "gmdiff", AuthorYearStyle)

CSS = """
article td code, article td code span.pre { white-space: normal; overflow-wrap: anywhere; }
article td:first-child code, article td:first-child code span.pre { white-space: nowrap;
  overflow-wrap: normal; }
table.claims-map { border-collapse: collapse; font-size: 0.8em; margin-bottom: 0.3em; }
table.claims-map th { text-align: right; padding: 2px 8px 2px 0; white-space: nowrap;
  font-weight: 600; }
table.claims-map td { border: 1px solid #777; padding: 2px 6px; text-align: center;
  min-width: 2.2em; }
table.claims-map td a { color: #000; text-decoration: none; }
div.claims-table td:first-child { white-space: nowrap; }
p.claims-legend span { border: 1px solid #777; padding: 1px 5px; margin-right: 4px;
  font-size: 0.8em; white-space: nowrap; line-height: 2; color: #000; }
tr[id^="claim-"]:target { outline: 2px solid #e66101; }
tr[id^="claim-"] { scroll-margin-top: 5rem; }
div.verdict-tally table { width: auto; }
div.verdict-tally td:first-child { white-space: nowrap; }
p.build-stamp, p.source-download { font-size: 0.8em; margin-bottom: 0.3em; }
div.chapter-run { font-size: 0.85em; border-left: 3px solid var(--pst-color-primary, #4393c3);
  padding: 0.2em 0.8em; margin: 0.5em 0 1em; background: var(--pst-color-surface, #f5f5f5); }
div.chapter-run p { margin: 0; }
div.chapter-run code { white-space: pre-wrap; overflow-wrap: anywhere; }
"""


def _write_css(app, exception):
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "gmdiff-ledger.css"
        target.write_text(CSS, encoding="utf-8")


def setup(app):
    app.add_role("claim", claim_role)
    app.add_directive("claims-table", ClaimsTable)
    app.add_directive("claims-map", ClaimsMap)
    app.add_directive("errata-list", ErrataList)
    app.add_directive("verdict-tally", VerdictTally)
    app.add_config_value("gmdiff_build_stamp", {}, "html")
    app.add_config_value("gmdiff_commit", "", "html")
    app.add_config_value("gmdiff_repository", "", "html")
    app.add_config_value("gmdiff_chapters", {}, "html")
    app.connect("config-inited", _stamp_config)
    app.connect("html-page-context", _stamp_page)
    app.add_css_file("gmdiff-ledger.css")
    app.connect("build-finished", _write_css)
    app.connect("build-finished", _write_downloads)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
