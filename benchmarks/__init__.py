"""Benchmarks of gmdiff against diffusers and a bare loop (``make bench``); see
benchmarks/run.py and the book's performance page."""
