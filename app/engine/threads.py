"""How many CPU threads llama.cpp gets: physical cores, minus the cores other programs keep busy.

Why not "all cores": llama.cpp splits every matrix product across its threads and waits at
a barrier after each one, so a generation step runs at the speed of its slowest thread. When
another program keeps one core busy, the thread that shares that core gets a time slice now
and then, and every step waits for it. Measured with llama-bench on a 2-core machine: 74
tokens/s idle with 2 threads, about 2 tokens/s with 2 threads next to one busy process, about
35 tokens/s with 1 thread next to the same process. Hyper-threads do not help either (two
threads on one core share its vector units), hence physical cores, not logical CPUs.

The default policy (`ThreadPolicy`) therefore decides before every generation:

    threads = max(1, physical_cores - busy_cores)

where busy_cores is the CPU time that *other* processes used over the last second or so,
rounded up from 0.4 of a core (a core that is busy 40% of the time already stalls the
barrier often). Our own process's CPU time is subtracted, so the engine's own threads, still
spinning after the previous generation, never count as load. Idle, this is every physical
core (full speed); next to one CPU-bound process, one core fewer (at least half the idle
speed, instead of a collapse). tests/bench/engine.py on the same 2-core machine, synthetic
Qwen3-0.6B Q4_K_M: 50.4 tokens/s idle (2 threads), 36.8 next to a busy process (the policy
picks 1 thread: 0.73 of idle), 20.6 with both threads forced next to the same process.
It is re-evaluated per call (`llama_set_n_threads` is cheap), so a compile or a video call
starting mid-conversation is noticed on the next turn.

Load comes from /proc/stat (Linux: system-wide, so other containers on the same VM count
too, as does hypervisor steal). A daemon thread, started with the first engine, snapshots
it every half second, so choosing costs no waiting (except up to 0.1 s right after start).
Elsewhere the one-minute load average stands in, less precisely; on Windows, idle is
assumed.
An explicit thread count (settings, `--threads`) turns the policy off.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.llama_runtime import check_threads

SAMPLE_INTERVAL_S = 0.5
WINDOW_S = 1.0  # how far back "the current load" looks
MIN_WINDOW_S = 0.1  # 10 clock ticks per CPU: enough to tell a busy core from an idle one
BUSY_FRACTION = 0.4  # a core busy this much of the time counts as taken


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads counted once)."""
    if sys.platform.startswith("linux"):
        counted = _linux_physical_cores()
        if counted:
            return counted
    if sys.platform == "darwin":
        counted = _sysctl_int("hw.perflevel0.physicalcpu") or _sysctl_int("hw.physicalcpu")
        if counted:
            return counted
    logical = os.cpu_count() or 1
    # Unknown topology: x86 machines with 4+ logical CPUs almost always have two per core.
    return max(1, logical // 2) if logical >= 4 else logical


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _linux_physical_cores() -> int:
    cores = set()
    for cpu in _allowed_cpus():
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return 0
        cores.add((package, core))
    return len(cores)


def _sysctl_int(name: str) -> int:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True,
                             timeout=2, check=False).stdout
        return int(out.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative CPU seconds at one moment: busy on the allowed CPUs, and ours."""

    wall: float
    busy_s: float | None  # None where /proc/stat is unavailable
    own_s: float


def _proc_stat_busy_seconds(cpus: set[int]) -> float | None:
    """Busy CPU seconds since boot over `cpus` (user, nice, system, irq, softirq, steal)."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    ticks = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        fields = [int(x) for x in rest.split()]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        ticks += user + nice + system + irq + softirq + steal
    return ticks / os.sysconf("SC_CLK_TCK")


class LoadMonitor:
    """Keeps recent CPU snapshots so the load over the last second is known at once.

    `reader` replaces the system snapshot (tests); `background` False takes samples only
    when `sample()` is called."""

    def __init__(self, interval_s: float = SAMPLE_INTERVAL_S, *,
                 reader: Callable[[], CpuSnapshot] | None = None,
                 background: bool = True) -> None:
        self._interval = interval_s
        self._cpus = _allowed_cpus()
        self._reader = reader or self._system_snapshot
        self._background = background
        self._samples: deque[CpuSnapshot] = deque(maxlen=int(4 * WINDOW_S / interval_s) + 2)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _system_snapshot(self) -> CpuSnapshot:
        return CpuSnapshot(time.monotonic(), _proc_stat_busy_seconds(self._cpus),
                           time.process_time())

    def snapshot(self) -> CpuSnapshot:
        return self._reader()

    def sample(self) -> None:
        snap = self.snapshot()
        with self._lock:
            self._samples.append(snap)

    def start(self) -> None:
        if not self._background:
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="amicus-load-monitor",
                                            daemon=True)
        self.sample()
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self._interval)
            self.sample()

    def others_busy_cores(self) -> float:
        """Cores' worth of CPU time other processes used over about the last second."""
        self.start()
        now = self.snapshot()
        start = self._window_start(now)
        if start is None or now.wall - start.wall < MIN_WINDOW_S:
            # Right after start-up (a tiny model loads in milliseconds): wait out the rest
            # of the shortest window rather than guess.
            waited_since = start or now
            time.sleep(max(0.0, MIN_WINDOW_S - (now.wall - waited_since.wall)))
            now, start = self.snapshot(), waited_since
        if now.busy_s is None or start.busy_s is None:
            return _loadavg_others(now, start)
        elapsed = now.wall - start.wall
        others = (now.busy_s - start.busy_s) - (now.own_s - start.own_s)
        return max(0.0, others / elapsed)

    def _window_start(self, now: CpuSnapshot) -> CpuSnapshot | None:
        """The newest sample at least WINDOW_S old, else the oldest one there is."""
        with self._lock:
            samples = [s for s in self._samples if s.wall < now.wall]
        if not samples:
            return None
        old_enough = [s for s in samples if now.wall - s.wall >= WINDOW_S]
        return old_enough[-1] if old_enough else samples[0]


def _loadavg_others(now: CpuSnapshot, start: CpuSnapshot) -> float:
    """Without /proc/stat: runnable processes (1-minute average) minus our own share."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0  # Windows: no cheap system-wide figure; assume idle
    elapsed = max(now.wall - start.wall, 1e-3)
    return max(0.0, load - (now.own_s - start.own_s) / elapsed)


_shared_monitor: LoadMonitor | None = None
_shared_lock = threading.Lock()


def shared_monitor() -> LoadMonitor:
    """One monitor per process, started on first use, shared by every engine."""
    global _shared_monitor
    with _shared_lock:
        if _shared_monitor is None:
            _shared_monitor = LoadMonitor()
        return _shared_monitor


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    physical_cores: int
    others_busy_cores: float  # measured load of other processes (0 for a fixed count)
    fixed: bool  # True when the user set the count


class ThreadPolicy:
    """Chooses the thread count before each call; see the module docstring for why."""

    def __init__(self, fixed: int | None = None, *, cores: int | None = None,
                 monitor: LoadMonitor | None = None) -> None:
        check_threads(fixed)
        self.fixed = fixed
        self.cores = cores or physical_cores()
        self._monitor = monitor

    def choose(self) -> ThreadChoice:
        if self.fixed is not None:
            return ThreadChoice(self.fixed, self.cores, 0.0, fixed=True)
        monitor = self._monitor or shared_monitor()
        others = monitor.others_busy_cores()
        return ThreadChoice(threads_for_load(self.cores, others), self.cores, round(others, 2),
                            fixed=False)

    def warm_up(self) -> None:
        """Start measuring now (at model load), so the first choice needs no wait."""
        if self.fixed is None:
            with contextlib.suppress(RuntimeError):
                (self._monitor or shared_monitor()).start()


def threads_for_load(cores: int, others_busy_cores: float) -> int:
    """physical cores minus the cores other processes keep busy, at least one."""
    busy = int(others_busy_cores + (1.0 - BUSY_FRACTION))
    return max(1, cores - busy)
