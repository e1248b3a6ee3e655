"""icar.train.retain_cpu_memory changes how fast a step runs, never what it computes."""
import subprocess
import sys
import textwrap

import pytest


def test_retained_cpu_memory_gives_bitwise_identical_training():
    code = textwrap.dedent("""
        import torch
        from icar import noncommuting as nc, train
        def run():
            X, Y = nc.split_inputs_targets(nc.haar_sequences(64, 3, 9, seed=0, dtype=torch.float32).states, False)
            m = nc.PositionalTokenAttention(2, 3, heads=2, max_len=8, seed=0, dtype=torch.float32)
            return train.train(m, train.fixed_batch(X, Y), steps=5, lr=1e-2, progress=False).losses
        before = run()
        applied = train.retain_cpu_memory()
        after = run()
        assert torch.equal(before, after), (before, after)
        print(applied)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("True" if sys.platform.startswith("linux") else "False")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc (Linux)")
def test_setup_on_the_cpu_keeps_freed_memory_for_the_next_step():
    """After icar.setup on the CPU, a 64 MiB tensor comes from malloc's heap, not from a fresh mmap, and once freed it
    stays in the heap for the next step (glibc's own statistics, ``mallinfo2``). Without it, glibc maps such a block
    afresh and unmaps it on free: one page fault per 4 KiB page at every step. (Whether the kernel later pages out
    the kept memory, as DAMON's reclaim on some virtual machines does, is not the allocator's doing; so the test
    reads the allocator's statistics, not page-fault counts.)"""
    code = textwrap.dedent("""
        import ctypes, torch, icar
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                       "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL("libc.so.6")
        if not hasattr(libc, "mallinfo2"):
            print("no-mallinfo2")
            raise SystemExit
        libc.mallinfo2.restype = Info
        def mapped_while_held_and_kept_after_free():
            x = torch.ones(16 * 2**20)                           # 64 MiB
            mapped = libc.mallinfo2().hblkhd                     # bytes in mmap-ed blocks
            del x
            return mapped >> 20, libc.mallinfo2().fordblks >> 20  # MiB; free bytes kept in the heap
        print(*mapped_while_held_and_kept_after_free())
        icar.setup(seed=0, device="cpu")
        print(*mapped_while_held_and_kept_after_free())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if out.stdout.strip() == "no-mallinfo2":
        pytest.skip("glibc older than 2.33 (no mallinfo2)")
    (mapped_plain, _), (mapped_kept, kept) = [tuple(map(int, line.split())) for line in out.stdout.splitlines()]
    assert mapped_plain >= 64, f"control: the system allocator should mmap a 64 MiB block; {mapped_plain} MiB mapped"
    assert mapped_kept < 64, f"after icar.setup a 64 MiB block should come from the heap; {mapped_kept} MiB mmap-ed"
    assert kept >= 64, f"after icar.setup a freed 64 MiB block should stay in the heap; {kept} MiB free there"
