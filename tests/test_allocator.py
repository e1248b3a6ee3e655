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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and minor page faults (Linux)")
def test_setup_on_the_cpu_keeps_freed_memory_for_the_next_step():
    """After icar.setup on the CPU, a 64 MiB block freed and allocated again costs no fresh page faults (without it,
    glibc maps it afresh: one minor fault per 4 KiB page, ~16,000)."""
    code = textwrap.dedent("""
        import resource, sys, torch, icar
        def faults_of_second_allocation():
            x = torch.ones(16 * 2**20); del x                    # 64 MiB, freed
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            x = torch.ones(16 * 2**20)                           # the same size again, written
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        plain = faults_of_second_allocation()
        icar.setup(seed=0, device="cpu")
        print(plain, faults_of_second_allocation())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    plain, kept = map(int, out.stdout.split())
    assert plain > 8000, f"control: the system allocator should map 64 MiB afresh; {plain} faults"
    assert kept < 1000, f"icar.setup should keep freed CPU memory; the second 64 MiB took {kept} page faults"
