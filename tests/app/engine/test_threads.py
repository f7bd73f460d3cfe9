"""The default thread policy: physical cores minus the cores other processes keep busy."""

from __future__ import annotations

import math

import pytest

from app.engine.threads import (
    CpuSnapshot,
    LoadMonitor,
    ThreadPolicy,
    physical_cores,
    threads_for_load,
)
from converters.errors import InputError


@pytest.mark.parametrize(("cores", "others", "expected"), [
    (2, 0.0, 2), (2, 0.3, 2), (2, 0.5, 1), (2, 1.0, 1), (2, 2.0, 1), (8, 1.0, 7),
    (8, 2.7, 5), (1, 1.0, 1),
])
def test_threads_for_load(cores, others, expected):
    assert threads_for_load(cores, others) == expected


def scripted_monitor(snapshots: list[CpuSnapshot]) -> LoadMonitor:
    feed = iter(snapshots)
    monitor = LoadMonitor(reader=lambda: next(feed), background=False)
    for _ in snapshots[:-1]:
        monitor.sample()
    return monitor


def test_own_cpu_time_is_not_load():
    # 1.5 busy CPU-seconds over one second, 1.0 of them ours: others used half a core.
    monitor = scripted_monitor([CpuSnapshot(0.0, 100.0, 10.0), CpuSnapshot(1.0, 101.5, 11.0)])
    assert monitor.others_busy_cores() == pytest.approx(0.5)


def test_one_busy_process_costs_one_thread():
    monitor = scripted_monitor([CpuSnapshot(0.0, 0.0, 0.0), CpuSnapshot(0.5, 0.45, 0.0),
                                CpuSnapshot(1.0, 0.95, 0.0), CpuSnapshot(1.2, 1.15, 0.0)])
    choice = ThreadPolicy(cores=2, monitor=monitor).choose()
    assert (choice.threads, choice.fixed) == (1, False)
    assert choice.others_busy_cores == pytest.approx(1.15 / 1.2, abs=0.01)


def test_idle_machine_gets_every_core():
    monitor = scripted_monitor([CpuSnapshot(0.0, 5.0, 1.0), CpuSnapshot(1.0, 7.0, 2.9)])
    assert ThreadPolicy(cores=2, monitor=monitor).choose().threads == 2


def test_window_uses_the_sample_about_a_second_old():
    # Samples every 0.5 s; the load started 1 s ago: an old idle period must not dilute it.
    snaps = [CpuSnapshot(t, busy, 0.0) for t, busy in
             [(0.0, 0.0), (10.0, 0.0), (10.5, 0.5), (11.0, 1.0), (11.1, 1.1)]]
    assert scripted_monitor(snaps).others_busy_cores() == pytest.approx(1.0)


def test_a_fixed_count_turns_the_policy_off():
    choice = ThreadPolicy(3).choose()
    assert (choice.threads, choice.fixed) == (3, True)
    for bad in (0, 513):  # a bad input, not a bug: one line, exit 2
        with pytest.raises(InputError, match="threads must be from 1 to 512"):
            ThreadPolicy(bad)


def test_real_machine_figures_are_sane():
    cores = physical_cores()
    assert 1 <= cores <= 1024
    others = LoadMonitor(background=False).others_busy_cores()
    assert math.isfinite(others) and others >= 0
