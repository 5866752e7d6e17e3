"""What is specific to each paper: its variants, its tables' published numbers, and the
experiment functions that the chapters call; and the study that sets the four papers'
methods against each other (:mod:`gmdiff.papers.cross_paper`, CLAIMS X-1 / X-2)."""
