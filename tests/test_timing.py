"""dlcourse.metrics.timing: the course's one home for timers."""

import time

import pytest

from dlcourse.metrics import timing
from dlcourse.metrics.timing import best_seconds, time_call


def test_best_seconds_warms_up_repeats_and_keeps_the_fastest():
    calls = []
    durations = iter([0.05, 0.03, 0.01, 0.02])  # the warm-up call, then three timed calls

    def fn():
        calls.append(1)
        time.sleep(next(durations))
        return len(calls)

    seconds, result = best_seconds(fn, repeats=3, warmup=1)
    assert len(calls) == 4 and result == 4
    assert 0.01 <= seconds < 0.02


def test_best_seconds_runs_until_the_budget_is_spent(monkeypatch):
    # A fake clock: each call takes exactly 10 ms however loaded the machine is (a real sleep
    # overshoots under load, and then fewer calls fill the budget).
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    calls = []

    def fn():
        calls.append(1)
        clock[0] += 0.01

    seconds, _ = best_seconds(fn, repeats=1, warmup=0, budget=0.05)
    assert len(calls) == 5 and seconds == pytest.approx(0.01)
    clock[0] = 0.0
    calls.clear()
    best_seconds(fn, repeats=7, warmup=0, budget=0.05)
    assert len(calls) == 7


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"repeats": 0}, "repeats to be a positive integer"),
        ({"budget": -1.0}, "budget >= 0"),
        ({"warmup": -1}, "non-negative int warmup"),
    ],
)
def test_best_seconds_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        best_seconds(lambda: None, **kwargs)


def test_time_call_measures_wall_and_processor_time():
    result, wall, cpu = time_call(lambda: time.sleep(0.05) or "done")
    assert result == "done" and wall >= 0.05 and cpu < 0.04  # sleeping costs no processor time
    _, wall, cpu = time_call(lambda: sum(i * i for i in range(300_000)))
    assert cpu > 0 and wall > 0
