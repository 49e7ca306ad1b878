"""The engine interface: results in order, failures by lowest index, interrupts at once."""

from __future__ import annotations

import threading
import time

import pytest

from normcli.errors import InputError
from normcli.runs.engine import ThreadEngine


def test_input_pool_returns_results_in_order_and_reraises():
    """Later calls may finish first; results still come in call order, and the
    first failure (in order) is re-raised."""
    def slow_first(i):
        time.sleep(0.02 * (4 - i))
        return i * i

    with ThreadEngine(3) as pool:
        assert pool.start(slow_first, 5)() == [0, 1, 4, 9, 16]

    def fails(i):
        if i == 2:
            raise InputError(f"f{i}", "bad")
        return i

    with pytest.raises(InputError, match="f2: bad"):
        with ThreadEngine(3) as pool:
            pool.start(fails, 5)()


def test_input_pool_with_one_job_runs_in_the_caller_when_asked():
    """One job: no thread; the calls run, in order, when the results are asked for."""
    ran = []
    with ThreadEngine(1) as pool:
        results = pool.start(lambda i: ran.append((i, threading.current_thread())) or i, 4)
        assert ran == []
        assert results() == [0, 1, 2, 3]
    assert [i for i, _ in ran] == [0, 1, 2, 3]
    assert {t for _, t in ran} == {threading.current_thread()}


def test_input_pool_map_works_in_the_caller_too_and_stops_on_a_failure():
    """map(): results in input order; the calling thread takes inputs as well (it
    would only wait otherwise); after a failure no thread starts another input, and
    the failure is raised."""
    who: dict[int, str] = {}

    def square(i):
        who[i] = threading.current_thread().name
        time.sleep(0.002)
        return i * i

    with ThreadEngine(3) as pool:
        assert pool.map(square, 40) == [i * i for i in range(40)]
    names = set(who.values())
    assert threading.current_thread().name in names and len(names) >= 2

    started = []

    def fail_at_5(i):
        started.append(i)
        time.sleep(0.002)
        if i == 5:
            raise ValueError("five")
        return i

    with pytest.raises(ValueError, match="five"), \
            ThreadEngine(3) as pool:
        pool.map(fail_at_5, 100)
    assert 5 in started and len(started) < 20  # the others stopped taking inputs


def test_input_pool_map_raises_ctrl_c_at_once_and_errors_by_index():
    """Ctrl-C in the calling thread is raised without waiting for the others' current
    inputs (and wins over their errors); otherwise the error of the lowest input
    index is raised, as with one job."""
    main = threading.current_thread()

    def slow_helpers(i):
        if threading.current_thread() is main:
            time.sleep(0.05)
            raise KeyboardInterrupt
        time.sleep(1.0)
        raise ValueError(f"helper {i}")

    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), \
            ThreadEngine(2) as pool:
        pool.map(slow_helpers, 10)
    assert time.perf_counter() - start < 0.8

    def two_bad(i):
        time.sleep(0.05 if i == 1 else 0.001)  # index 1 fails last
        if i in (1, 6):
            raise ValueError(f"input {i}")
        return i

    for jobs in (1, 2, 3):
        with pytest.raises(ValueError, match="input 1"), \
                ThreadEngine(jobs) as pool:
            pool.map(two_bad, 10)
