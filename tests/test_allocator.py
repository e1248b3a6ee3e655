"""icar.train.retain_cpu_memory changes how fast a step runs, never what it computes."""
import subprocess
import sys
import textwrap


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
