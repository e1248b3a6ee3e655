"""A long training keeps its memory flat: nothing small and long-lived is allocated per step.

Found in chapter 5's paper mode (3,200 Adam steps of the figure-5 model at batch 1024): the loss history was a list
of one ``(M,)`` tensor per step. Each of those small blocks was placed by glibc's ``malloc`` between the step's large
freed temporaries (blocks under the 32 MiB ``mmap`` threshold come from the heap), so the heap could neither reuse
nor return them: about 3 MB more per step, ~11 GB by the end. The history is now one ``(steps, M)`` tensor.
"""
import subprocess
import sys
import textwrap

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_training_memory_does_not_grow_with_steps():
    # the figure-5 model at a quarter of the paper's batch: ~10 MB score tensors per step, 400 steps, memory read
    # at steps 100 and 399; with one history tensor per step it grew by 252 MB between them, now by -3 MB
    code = textwrap.dedent("""
        import torch
        from icar import noncommuting as nc, train
        torch.set_num_threads(1)
        def rss_mb():
            return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) / 1024
        S = nc.haar_sequences(4096, 5, 51, seed=0, dtype=torch.float32).states
        X, Y = nc.split_inputs_targets(S, augmented=True)
        m = nc.AugmentedAttention(4, 5, attention="linear", paper=True, seed=0, dtype=torch.float32)
        draw, seen = nc.minibatches(X, Y, 256), {}
        def batch(step, gen):
            if step in (100, 399):
                seen[step] = rss_mb()
            return draw(step, gen)
        train.train(m, batch, steps=400, lr=1e-2, progress=False)
        print(seen[399] - seen[100])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    growth = float(out.stdout.strip())
    # flat up to the allocator's noise (a few ~10 MB blocks); the fragmentation gave 252 MB
    assert growth < 60, f"resident memory grew by {growth:.0f} MB over 300 training steps"
