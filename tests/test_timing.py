"""The one step timer (gmdiff.timing): rounds, warm-up, per-step seconds, medians and
per-round ratios, on a fake clock that the timed work advances."""

from __future__ import annotations

import pytest
import torch

from gmdiff import timing


@pytest.fixture
def clock(monkeypatch):
    """A fake time.perf_counter for gmdiff.timing; ``clock.tick(s)`` advances it."""

    class Clock:
        now = 0.0

        def tick(self, s: float) -> None:
            self.now += s

    c = Clock()
    monkeypatch.setattr(timing.time, "perf_counter", lambda: c.now)
    return c


def test_step_times_interleave_rounds_skip_warmup_and_divide_by_steps(clock):
    calls = []
    cost = {"a": [9.0, 2.0, 4.0, 3.0], "b": [9.0, 4.0, 4.0, 9.0]}  # round 0 is the warm-up

    def work(k):
        def run():
            clock.tick(cost[k][sum(c == k for c in calls)])
            calls.append(k)

        return run

    times = timing.step_times({"a": work("a"), "b": work("b")}, steps=2, repeats=3, warmup=1)
    assert calls == ["a", "b"] * 4  # every round visits the candidates in turn
    assert times["a"].seconds == (1.0, 2.0, 1.5)  # per step; the warm-up round not counted
    assert times["b"].seconds == (2.0, 2.0, 4.5)
    assert times["a"].median == 1.5 and times["b"].median == 2.0
    # the median of the per-round ratios (2, 1, 3), not the ratio of the medians (4/3)
    assert times["b"].ratio(times["a"]) == 2.0
    assert timing.StepTime((1.0, 2.0, 4.0, 10.0)).median == 3.0  # even count: middle two


def test_step_times_run_on_one_thread_and_restore_the_count(clock):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    try:
        timing.step_times({0: lambda: seen.append(torch.get_num_threads())}, 1, 2)
        assert seen == [1, 1] and torch.get_num_threads() == 2
        timing.step_times({0: lambda: seen.append(torch.get_num_threads())}, 1, 1, threads=None)
        assert seen[-1] == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("steps, repeats, warmup", [(0, 1, 0), (1, 0, 0), (1, 1, -1)])
def test_step_times_refuse_empty_or_negative_counts(steps, repeats, warmup):
    with pytest.raises(ValueError, match="need steps >= 1"):
        timing.step_times({0: lambda: None}, steps, repeats, warmup)
