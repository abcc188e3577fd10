import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from cmbflow.device import prepare_cpu


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_prepare_cpu_sets_the_threads_and_keeps_freed_memory_in_the_process():
    """After it a freed 200 MB block stays resident (glibc's default maps such a block on its own
    and hands it back on free: the pages would be zeroed again at the next window's allocation)."""
    threads = torch.get_num_threads()
    try:
        prepare_cpu(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc options are glibc's")
    block = np.ones(200 * 2**20 // 8)  # written: resident
    held = resident_bytes()
    del block
    assert resident_bytes() > held - 100 * 2**20
