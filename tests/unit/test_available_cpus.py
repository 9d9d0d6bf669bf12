"""`filerelay worker` starts a process per CPU it may use: a container's CPU limit counts, not the node's cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from filerelay.cli.supervisor import available_cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000\n", AFFINITY),  # no limit
        ("100000 100000\n", 1),
        ("150000 100000\n", min(2, AFFINITY)),  # 1.5 CPUs: rounded up
        ("50000 100000\n", 1),  # half a CPU: still one process
        ("not a quota\n", AFFINITY),
    ],
)
def test_a_cgroup_quota_bounds_the_processes(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    assert available_cpus(path) == expected


def test_without_a_cgroup_file_the_affinity_counts(tmp_path: Path) -> None:
    assert available_cpus(tmp_path / "missing") == AFFINITY
