"""Reproduce the kernel stall: execute chapter notebooks again and again through nbclient, count the runs that stall.

A stall is a run that ends in ``CellTimeoutError`` / ``DeadKernelError`` / a lost reply (the kernel stops answering
while the cell itself is short), as opposed to a cell that raises. Run it under load, e.g.::

    stress-ng --cpu 2 --timeout 600s &
    ICAR_QUICK=1 python benchmarks/kernel_stall.py --budget 540 --timeout 90 book/02_*.ipynb book/03_*.ipynb

The kernel is started from the ``python`` on ``PATH`` (the kernelspec's ``argv``), so run it from the virtual
environment whose ipykernel is under test; the script prints the ipykernel version that the kernel reports.
Measured on the course's 2-core machine (other work running, load 10-17, plus stress-ng --cpu 2), quick mode,
chapters 2 and 3 alternately, 120 s cell timeout (Dec 2026): ipykernel 7.4.0, 5 timed runs: 2 waited 117 s (9
earlier untimed runs: none timed out, one took 154 s instead of 24-47 s); ipykernel 6.31.0, 5 timed runs: 1 waited
116 s. Every long wait was on the client side, for the reply to chapter 2's live ``ipywidgets`` explorer cell (the
kernel had gone idle; the reply was found only when the client's poll timed out); no request ever waited more than
0.06 s in the kernel and no ``ZMQError`` was logged. Later batches (10 runs of chapter 2 with a live explorer, 60 s
timeout, ipykernel 7.4.0) had no long wait. The book build now draws its explorers statically
(``ICAR_EXPLORERS=static``), so it sends no widget traffic at all.

Prints one line per run (with the longest wait of a request before the kernel read it) and a summary
``runs=N stalls=K slow=S errors=E``; exits 0 (it measures, it does not judge).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError


def kernel_ipykernel_version() -> str:
    """The ipykernel version of the kernel that nbclient would start (its own answer, not this process's)."""
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        reply = kc.execute_interactive("import ipykernel, sys; print(ipykernel.__version__, sys.executable)",
                                       timeout=60, output_hook=lambda msg: _collect(msg))
        return "".join(_OUT).strip() + f" (status {reply['content']['status']})"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


_OUT: list[str] = []


def _collect(msg: dict) -> None:
    if msg["msg_type"] == "stream":
        _OUT.append(msg["content"]["text"])


class TimedClient(NotebookClient):
    """An nbclient that notes when it starts each code cell (just before it sends the execute_request)."""

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        if cell.cell_type == "code":
            self.sent_at = getattr(self, "sent_at", {})
            self.sent_at[cell_index] = datetime.now(timezone.utc)
        return await super().async_execute_cell(cell, cell_index, *args, **kwargs)

    async def _async_poll_for_reply(self, msg_id, cell, *args, **kwargs):
        msg = await super()._async_poll_for_reply(msg_id, cell, *args, **kwargs)
        cell.metadata.setdefault("execution", {})["client.reply_received"] = datetime.now(timezone.utc).isoformat()
        return msg


def _stamp(cell: nbformat.NotebookNode, key: str) -> datetime | None:
    value = cell.metadata.get("execution", {}).get(key)
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def dispatch_gaps(nb: nbformat.NotebookNode, sent_at: dict[int, datetime]) -> list[tuple[int, float, float]]:
    """For each code cell after the first: (index, client delay, kernel delay) in seconds.

    Client delay: from the kernel going idle on the previous cell to the client sending this one. Kernel delay:
    from the client sending the request to the kernel going busy on it (kernel-side timestamp). Reading a request
    takes milliseconds even under load; a request that sits unread on the shell socket (the stall) shows up as a
    kernel delay of seconds, even when something later wakes the socket and the run still finishes.
    """
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    out = []
    for (_, prev), (i, cur) in zip(code, code[1:]):
        idle, busy, sent = _stamp(prev, "iopub.status.idle"), _stamp(cur, "iopub.status.busy"), sent_at.get(i)
        if idle and busy and sent:
            out.append((i, (sent - idle).total_seconds(), (busy - sent).total_seconds()))
    return out


def run_once(path: Path, timeout: int, slow_gap: float, widget_replies: bool = True) -> tuple[str, float, str]:
    """Execute one notebook; return (outcome, seconds, detail) with outcome in ok / slow / stall / error.

    ``slow``: it finished, but some request or reply waited more than ``slow_gap`` seconds. ``widget_replies=False``
    turns off nbclient's emulation of a front end for ``Output`` widgets (which sends ``comm_msg`` updates to the
    kernel on the shell channel while the client is waiting there for the cell's reply).
    """
    nb = nbformat.read(path, as_version=4)
    client = TimedClient(nb, timeout=timeout, kernel_name="python3", startup_timeout=120, record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})
    if not widget_replies:
        client.comm_open_handlers = {}
    t0 = time.perf_counter()
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError, TimeoutError) as err:
        return "stall", time.perf_counter() - t0, f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    except CellExecutionError as err:
        return "error", time.perf_counter() - t0, str(err).strip().splitlines()[-1][:160]
    except Exception as err:  # e.g. RuntimeError "Kernel didn't respond", or nbclient's own cleanup failing
        return "stall", time.perf_counter() - t0, f"{type(err).__name__}: {str(err)[:160]}"
    seconds = time.perf_counter() - t0
    gaps = dispatch_gaps(nb, getattr(client, "sent_at", {}))
    if not gaps:
        return "ok", seconds, "no timing recorded"
    cell, client_delay, _ = max(gaps, key=lambda g: g[1])
    kcell, _, kernel_delay = max(gaps, key=lambda g: g[2])
    outcome = "slow" if max(client_delay, kernel_delay) > slow_gap else "ok"
    if outcome == "slow" and os.environ.get("STALL_DUMP"):   # keep the executed notebook and its timestamps
        dump = Path(os.environ["STALL_DUMP"]) / f"{path.stem}-{time.strftime('%H%M%S')}.ipynb"
        dump.parent.mkdir(parents=True, exist_ok=True)
        for i, sent in getattr(client, "sent_at", {}).items():
            nb.cells[i].metadata.setdefault("execution", {})["client.sent"] = sent.isoformat()
        nbformat.write(nb, dump)
    return outcome, seconds, (f"longest wait: client {client_delay:.2f} s (cell {cell}), "
                              f"kernel {kernel_delay:.2f} s (cell {kcell}) over {len(gaps)} cells")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--budget", type=float, default=540.0, help="stop starting new runs after this many seconds")
    parser.add_argument("--timeout", type=int, default=90, help="nbclient per-cell timeout in seconds")
    parser.add_argument("--max-runs", type=int, default=1000)
    parser.add_argument("--no-widget-replies", action="store_true",
                        help="turn off nbclient's Output-widget emulation (its comm_msg sends on the shell channel)")
    parser.add_argument("--slow-gap", type=float, default=5.0, help="a request unread for this long counts as slow")
    args = parser.parse_args()
    print(f"kernel: ipykernel {kernel_ipykernel_version()} | ICAR_QUICK={os.environ.get('ICAR_QUICK')} "
          f"| per-cell timeout {args.timeout} s | budget {args.budget:.0f} s "
          f"| nbclient widget replies {'off' if args.no_widget_replies else 'on'}", flush=True)
    start, runs, counts = time.perf_counter(), 0, {"ok": 0, "slow": 0, "stall": 0, "error": 0}
    while runs < args.max_runs and time.perf_counter() - start < args.budget:
        for path in args.notebooks:
            if time.perf_counter() - start >= args.budget:
                break
            outcome, seconds, detail = run_once(path, args.timeout, args.slow_gap, not args.no_widget_replies)
            runs += 1
            counts[outcome] += 1
            load = os.getloadavg()[0]
            print(f"{time.strftime('%H:%M:%S')} run {runs:3d} {path.name:32s} {outcome:5s} {seconds:6.1f} s load {load:4.1f} {detail}", flush=True)
    print(f"runs={runs} stalls={counts['stall']} slow={counts['slow']} errors={counts['error']} ok={counts['ok']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
