"""The claims ledger: one source for every claim's verdict.

``book/claims.yml`` lists every claim of ``CLAIMS.md`` with the chapters that check it, the
profile that ran, the verdict and its reason. The book's pages never type a verdict: the
ledger page, the overview pages, the intro's map and the chapters' verdict lines are all
rendered from this file by :mod:`gmdiff.book_ext`, so a claim has one verdict everywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

#: The verdict words, in the order of ``CLAIMS.md``.
VERDICTS = (
    "reproduced",
    "reproduced at small scale",
    "partly",
    "not reproduced",
    "inconclusive",
    "not yet run",
)

#: Claim-ID prefix -> (overview page, title), in the book's order.
PAPERS = {
    "GS": ("gaussian_score", "Gaussian score approximation"),
    "GMS": ("gm_sgm", "GM-SGM"),
    "SMD": ("smd", "Soft mixture denoising"),
    "GMD": ("gm_ddpm", "GM-DDPM"),
    "X": ("claims", "Beyond the papers"),
}

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "book" / "claims.yml"


@dataclass(frozen=True)
class Claim:
    """One row of the ledger (fields as in ``book/claims.yml``)."""

    id: str
    claim: str
    chapters: tuple[str, ...]
    profile: str | None
    verdict: str
    reason: str
    #: Errata found, by paper key (only X-3 has them): MyST markdown, one per item.
    errata: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return self.id.rsplit("-", 1)[0]

    @property
    def number(self) -> int:
        return int(self.id.rsplit("-", 1)[1])


def load(path: str | Path = DEFAULT_PATH) -> dict[str, Claim]:
    """Read and check the ledger; returns claims by ID in the book's order.

    Raises ``ValueError`` on an unknown verdict word or prefix, a repeated ID, or a claim that
    ran (any verdict but "not yet run") without a chapter.
    """
    rows = yaml.safe_load(Path(path).read_text(encoding="utf-8"))["claims"]
    claims: dict[str, Claim] = {}
    for row in rows:
        c = Claim(
            id=row["id"],
            claim=row["claim"].strip(),
            chapters=tuple(row.get("chapters") or ()),
            profile=row.get("profile"),
            verdict=row["verdict"],
            reason=row["reason"].strip(),
            errata={k: tuple(v) for k, v in (row.get("errata") or {}).items()},
        )
        if c.verdict not in VERDICTS:
            raise ValueError(f"{c.id}: verdict {c.verdict!r} is not one of {VERDICTS}")
        if c.prefix not in PAPERS:
            raise ValueError(f"{c.id}: unknown paper prefix {c.prefix!r}")
        if c.id in claims:
            raise ValueError(f"{c.id} appears twice in {path}")
        unknown = set(c.errata) - {key for key, _ in PAPERS.values()}
        if unknown:
            raise ValueError(f"{c.id}: errata for unknown papers {sorted(unknown)}")
        if c.verdict != "not yet run" and not c.chapters:
            raise ValueError(f"{c.id}: a verdict needs the chapter that shows it")
        claims[c.id] = c
    order = list(PAPERS)
    return dict(sorted(claims.items(), key=lambda kv: (order.index(kv[1].prefix), kv[1].number)))


def of_paper(claims: dict[str, Claim], prefix: str) -> list[Claim]:
    """The claims of one paper (an ID prefix such as ``"GMS"``), in order."""
    return [c for c in claims.values() if c.prefix == prefix]


def tally(claims: dict[str, Claim]) -> dict[str, Counter]:
    """How many claims of each paper (ID prefix, every one of :data:`PAPERS`) have each
    verdict."""
    counts = {prefix: Counter() for prefix in PAPERS}
    for c in claims.values():
        counts[c.prefix][c.verdict] += 1
    return counts
