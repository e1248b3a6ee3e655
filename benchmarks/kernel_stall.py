"""Reproduce the kernel stall: execute notebooks again and again through nbclient, count the replies that get lost.

Run it under load, e.g. (one stressor, niced; the stall needs no more)::

    nice -n 10 stress-ng --cpu 1 --timeout 540s &
    python benchmarks/kernel_stall.py --budget 250 --timeout 10 benchmarks/stall/explorer_cells.ipynb
    python benchmarks/kernel_stall.py --budget 250 --timeout 10 --async-send benchmarks/stall/explorer_cells.ipynb

Outcomes per run: ``stall`` (some ``execute_reply`` sat in the client's socket for at least 0.8 x the cell timeout
after the kernel had sent it, or the kernel died), ``timeout`` (``CellTimeoutError``: the cell ran past the timeout
or the kernel never read the request), ``slow`` (a request or reply waited more than ``--slow-gap``), ``error``,
``ok``. The kernel is started from the ``python`` on ``PATH``; the script prints the ipykernel version it reports.

What the stall is (verified, Dec 2026: ipykernel 7.4.0, jupyter_client 8.10.0, nbclient 0.11.0, pyzmq 27.3.0,
libzmq 4.3.5, ipywidgets 8.1.9). A lost wake-up in the *client*, not a kernel fault. nbclient waits for a cell's
reply with ``await shell.poll(timeout)`` on a ``zmq.asyncio`` socket, whose ``ZMQ_FD`` is edge-triggered. While the
cell runs, nbclient emulates a front end for ``Output`` widgets (every ``ipywidgets.interact`` has one): for each
output the kernel routes into the widget it sends a ``comm_msg`` back to the kernel, on that same shell socket,
through ``jupyter_client.Session.send``, which sends on a blocking shadow of the asyncio socket. When the reply has
already landed, that send drains the socket's wake-up, and pyzmq's asyncio wrapper, which did not see the send, never
looks again: the reply is found only when the poll times out (the cell then passes, late), or, by the same code, never
with nbclient's ``timeout=None`` (``jupyter nbconvert --execute``'s default), since nothing else arrives on the shell to wake it
(the first report's run that "hung idle for 5 minutes after the explorer cell"). ``benchmarks/stall/lost_wakeup.py``
replays that order deterministically: the poll saw the waiting reply only at its timeout in 10/10 trials with the
send through ``Session.send``, 0/10 with the same send through the asyncio wrapper or with no send. Upstream:
jupyter/nbclient#312 (same symptom, ipywidgets), jupyter/jupyter_client#1059 (removing the shadow send; open, not
merged). There is no version to pin: ipykernel 7.4 needs jupyter_client >= 8.9, and ``Session.send`` shadows the
asyncio socket in 8.9.0 and 8.10.0 (the latest) alike; nbclient 0.11.0 (the latest) sends its widget replies that
way. The kernel-side race of the first report (ipykernel#1554, a request arriving while a reply is sent; ipykernel
7.0-7.3) is why ``requirements.txt`` asks for ipykernel >= 7.4; its ``ZMQError`` never appeared in the runs below.

Measured on the course's 2-core machine (other work running, load 2-9, plus ``nice -n 10 stress-ng --cpu 1``), 8
live explorer cells per notebook run, 10 s cell timeout (20 s in the second ``icar_explorers`` batch), Dec 2026:

==============================================  ======  ===========  ===============  ==========================
notebook, client, configuration                 runs    runs with a  late replies     comm_msg sent by the client
                                                        late reply                    per run
==============================================  ======  ===========  ===============  ==========================
``explorer_cells`` (``interact``), nbclient     25      9            9 or more        8
same, ``--async-send``                          35      0            0 (max 0.03 s)   8
``icar_explorers``, nbclient, live              13      5            6 (9.8/19.8 s)   8
``icar_explorers``, nbclient, static            17      0            0 (max 0.11 s)   0
``explorer_cells``, nbval (``pytest``)          31      0 failed     (no timeout)     none (blocking client)
``explorer_cells``, nbclient, nbval's load     12      5            5                8
==============================================  ======  ===========  ===============  ==========================

``--async-send`` keeps nbclient's widget traffic identical and only sends the same frames (every message the client
sends on the shell) through the asyncio wrapper (:func:`send_through_asyncio`), which re-checks the socket after
each send: the stall rate fell from 9/25 runs to
0/35, so that send is the cause. nbval ran 31 notebooks (248 live explorer cells: 11 ``pytest`` runs of one
notebook, then one of 20 copies, 340 cells in 169 s) without a timeout, while nbclient under the same load lost a
reply in 5 of 12 runs. (``icar_explorers`` rows: the second batch used a 20 s timeout, after one live
and one static run had ended in ``CellTimeoutError`` in their first cell, the import of ``icar`` and torch under
load, at 10 s: slow cells, not lost replies, left out of the counts.) What the course runs is free of
it: the book build draws its explorers statically (``ICAR_EXPLORERS=static``, set by ``icar.sphinx_pages``), so no
``Output`` widget exists and nbclient sends nothing on the shell; nbval drives the kernel with jupyter_client's
blocking client, which sends nothing while it waits and polls with ``zmq_poll`` (level-triggered), so it cannot lose
a wake-up. Running a chapter with live explorers through nbclient (``jupyter nbconvert --execute``, papermill,
``benchmarks/chapter_times.py``) is exposed: set ``ICAR_EXPLORERS=static`` there.

Earlier batches (before the cause was known; chapters 2 and 3 alternately, 120 s timeout, load 10-17 plus
stress-ng --cpu 2): ipykernel 7.4.0, 2 of 5 runs waited 117 s; ipykernel 6.31.0, 1 of 5 waited 116 s, each time for
the reply to chapter 2's live explorer cell, with the kernel idle. That is the symptom of the lost wake-up above
(which is in the client, so the kernel version does not matter); chapter 2 has one live explorer per run, the
notebooks above have eight, which is why they show it so much more often.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

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


def send_through_asyncio(channel) -> Callable[[dict], None]:
    """A ``send`` for a ``jupyter_client`` shell channel that goes through pyzmq's asyncio wrapper.

    ``channel.send`` is ``Session.send``, which sends on a blocking shadow of the asyncio socket; the wrapper does
    not see that send, so it does not re-check ``ZMQ_EVENTS`` afterwards, and a reply whose wake-up the send drained
    is not noticed (``benchmarks/stall/lost_wakeup.py``). Sending the same frames through the wrapper makes it
    re-check (and wake a pending poll) after every send."""
    def send(msg: dict) -> None:
        frames = channel.session.serialize(msg)
        frames.extend(msg.get("buffers") or [])
        channel.socket.send_multipart(frames)   # a Future, already resolved: the send is not deferred
    return send


class TimedClient(NotebookClient):
    """An nbclient that notes when it starts each code cell (just before it sends the execute_request).

    ``async_send=True`` sends the client's own shell messages (the ``comm_msg`` updates of nbclient's ``Output``
    widget emulation) through the asyncio wrapper instead of ``Session.send``: the A/B test of the cause."""

    async_send = False

    async def async_start_new_kernel_client(self):
        kc = await super().async_start_new_kernel_client()
        send = send_through_asyncio(kc.shell_channel) if self.async_send else kc.shell_channel.send
        self.shell_sends = 0

        def counted(msg: dict) -> None:   # count the comm_msg updates of the Output widget emulation
            self.shell_sends += msg["header"]["msg_type"] == "comm_msg"
            send(msg)
        kc.shell_channel.send = counted
        return kc

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


def reply_gaps(nb: nbformat.NotebookNode) -> list[tuple[int, float]]:
    """For each code cell: (index, reply delay) in seconds, from the kernel sending the ``execute_reply`` (the
    kernel's timestamp in its header) to nbclient's shell poll returning it. Milliseconds when all is well; a reply
    whose wake-up was lost is returned only when the poll times out, i.e. after about the cell timeout."""
    out = [(-1, 0.0)]
    for i, c in enumerate(nb.cells):
        sent, got = _stamp(c, "shell.execute_reply"), _stamp(c, "client.reply_received")
        if sent and got:
            out.append((i, (got - sent).total_seconds()))
    return out


def run_once(path: Path, timeout: int, slow_gap: float, widget_replies: bool = True,
             async_send: bool = False) -> tuple[str, float, str]:
    """Execute one notebook; return (outcome, seconds, detail) with outcome in ok / slow / stall / timeout / error.

    ``stall``: some reply was read only about the cell timeout after the kernel sent it (:func:`reply_gaps`), or the
    kernel died; ``timeout``: ``CellTimeoutError``; ``slow``: it finished, but some request or reply waited more than
    ``slow_gap`` seconds. ``widget_replies=False`` turns off nbclient's emulation of a front end for ``Output``
    widgets (which sends ``comm_msg`` updates to the kernel on the shell channel while the client is waiting there
    for the cell's reply); ``async_send=True`` keeps those sends but routes them through pyzmq's asyncio wrapper.
    """
    nb = nbformat.read(path, as_version=4)
    client = TimedClient(nb, timeout=timeout, kernel_name="python3", startup_timeout=120, record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}})
    if not widget_replies:
        client.comm_open_handlers = {}
    client.async_send = async_send
    t0 = time.perf_counter()
    try:
        client.execute()
    except CellTimeoutError as err:   # the cell ran past the timeout, or the kernel never read the request
        cell = max(getattr(client, "sent_at", {-1: None}))
        return "timeout", time.perf_counter() - t0, (f"CellTimeoutError in cell {cell} "
                                                      f"({nb.cells[cell].source.splitlines()[0][:60]!r} ...)")
    except (DeadKernelError, TimeoutError) as err:
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
    replies = reply_gaps(nb)
    rcell, reply_delay = max(replies, key=lambda g: g[1])
    lost = sum(d > 0.8 * timeout for _, d in replies)   # replies that sat in the client's socket until the poll timed out
    outcome = "stall" if lost else "slow" if max(client_delay, kernel_delay, reply_delay) > slow_gap else "ok"
    if outcome == "slow" and os.environ.get("STALL_DUMP"):   # keep the executed notebook and its timestamps
        dump = Path(os.environ["STALL_DUMP"]) / f"{path.stem}-{time.strftime('%H%M%S')}.ipynb"
        dump.parent.mkdir(parents=True, exist_ok=True)
        for i, sent in getattr(client, "sent_at", {}).items():
            nb.cells[i].metadata.setdefault("execution", {})["client.sent"] = sent.isoformat()
        nbformat.write(nb, dump)
    return outcome, seconds, (f"{lost} late replies, {client.shell_sends} client comm sends; longest wait: reply {reply_delay:.2f} s (cell {rcell}), "
                              f"client {client_delay:.2f} s (cell {cell}), "
                              f"kernel {kernel_delay:.2f} s (cell {kcell}) over {len(gaps)} cells")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--budget", type=float, default=540.0, help="stop starting new runs after this many seconds")
    parser.add_argument("--timeout", type=int, default=90, help="nbclient per-cell timeout in seconds")
    parser.add_argument("--max-runs", type=int, default=1000)
    parser.add_argument("--no-widget-replies", action="store_true",
                        help="turn off nbclient's Output-widget emulation (its comm_msg sends on the shell channel)")
    parser.add_argument("--async-send", action="store_true",
                        help="send nbclient's own shell messages through pyzmq's asyncio wrapper (the A/B of the cause)")
    parser.add_argument("--slow-gap", type=float, default=5.0, help="a request unread for this long counts as slow")
    args = parser.parse_args()
    print(f"kernel: ipykernel {kernel_ipykernel_version()} | ICAR_QUICK={os.environ.get('ICAR_QUICK')} "
          f"| per-cell timeout {args.timeout} s | budget {args.budget:.0f} s "
          f"| nbclient widget replies {'off' if args.no_widget_replies else 'on'} "
          f"| shell sends {'through the asyncio wrapper' if args.async_send else 'Session.send (stock)'}", flush=True)
    start, runs, counts = time.perf_counter(), 0, {"ok": 0, "slow": 0, "stall": 0, "timeout": 0, "error": 0}
    while runs < args.max_runs and time.perf_counter() - start < args.budget:
        for path in args.notebooks:
            if time.perf_counter() - start >= args.budget:
                break
            outcome, seconds, detail = run_once(path, args.timeout, args.slow_gap, not args.no_widget_replies,
                                                args.async_send)
            runs += 1
            counts[outcome] += 1
            load = os.getloadavg()[0]
            print(f"{time.strftime('%H:%M:%S')} run {runs:3d} {path.name:32s} {outcome:7s} {seconds:6.1f} s load {load:4.1f} {detail}", flush=True)
    print(f"runs={runs} stalls={counts['stall']} timeouts={counts['timeout']} slow={counts['slow']} "
          f"errors={counts['error']} ok={counts['ok']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
