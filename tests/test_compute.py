"""compute.py: where the network runs, and the malloc setting that keeps batched scoring off page faults."""

import ctypes
import subprocess
import sys

import pytest

# A fresh interpreter (no torch, nothing freed yet, so glibc's dynamic threshold is at its 128 KiB start)
# allocates 16 MiB and says whether malloc took it from mmap: mallinfo2().hblks counts mmapped blocks.
PROBE = """
import ctypes, sys
from barkwatch.model.compute import keep_freed_memory
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
if sys.argv[1] == "keep":
    assert keep_freed_memory()
before = libc.mallinfo2().hblks
block = libc.malloc(16 << 20)
print(libc.mallinfo2().hblks - before)
libc.free(ctypes.c_void_p(block))
"""


def _glibc_with_mallinfo2() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc_with_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_keep_freed_memory_makes_malloc_serve_large_blocks_from_the_heap():
    mmapped = {mode: int(subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                                        check=True).stdout) for mode in ("default", "keep")}
    assert mmapped == {"default": 1, "keep": 0}
