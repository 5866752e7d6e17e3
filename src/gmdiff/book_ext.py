"""Sphinx extension of the book: verdicts rendered from the one ledger, author-year references.

Loaded by ``_config.yml`` (``sphinx.extra_extensions``). It adds

* ``{claim}`GMS-5``` - a role that prints the claim's ID (a link to its ledger section) and
  its verdict, read from ``book/claims.yml``; chapters use it for their verdict lines;
* ``{claims-table} GMS`` - a paper's ledger rows: ID, claim (with the chapters that check
  it), verdict (with the profile that ran) and reason (left out with ``:brief:``, for the
  overview pages);
* ``{claims-map}`` - the intro's map: one coloured cell per claim, paper by paper;
* ``{errata-list} X-3`` - the errata, paper by paper;
* the pybtex style ``gmdiff``: the bibliography labelled "Author et al., year", as the text
  cites it (``bibtex_reference_style: author_year``).
"""

from __future__ import annotations

import html
from collections import Counter
from pathlib import Path
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList
from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle
from sphinx import addnodes

from gmdiff import ledger

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


def _anchor(prefix: str) -> str:
    return f"ledger-{prefix.lower()}"


def claim_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{claim}`ID``` -> "ID: **verdict**", the ID linking to the ledger."""
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
        reftarget=_anchor(c.prefix),
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
            cells = [c.id, claim, verdict] + ([] if brief else [_cell(c.reason)])
            lines.append("| " + " | ".join(cells) + " |")
        node = nodes.container(classes=["claims-table"])
        self.state.nested_parse(StringList(lines, source="book/claims.yml"), 0, node)
        return [node]


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
                    href=f"{uri}#{_anchor(prefix)}",
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
table.claims-map { border-collapse: collapse; font-size: 0.8em; margin-bottom: 0.3em; }
table.claims-map th { text-align: right; padding: 2px 8px 2px 0; white-space: nowrap;
  font-weight: 600; }
table.claims-map td { border: 1px solid #777; padding: 2px 6px; text-align: center;
  min-width: 2.2em; }
table.claims-map td a { color: #000; text-decoration: none; }
div.claims-table td:first-child { white-space: nowrap; }
p.claims-legend span { border: 1px solid #777; padding: 1px 5px; margin-right: 4px;
  font-size: 0.8em; white-space: nowrap; line-height: 2; }
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
    app.add_css_file("gmdiff-ledger.css")
    app.connect("build-finished", _write_css)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
