"""The kernel stall, replayed: a send on a shell socket that is being polled can swallow the reply's wake-up.

nbclient waits for an ``execute_reply`` with ``await shell.poll(timeout)`` on a ``zmq.asyncio`` socket: the event loop
watches the socket's ``ZMQ_FD``, which is *edge-triggered* (it signals once, when libzmq's command mailbox gets a
command such as "a message is ready to read"; any libzmq call on the socket that processes commands drains it).
While the cell runs, nbclient's emulation of the ``Output`` widget (``nbclient.output_widget``) answers the kernel's
widget output with a ``comm_msg`` sent on that same shell socket, through ``jupyter_client.Session.send``, which sends
on a *blocking shadow* of the asyncio socket (``zmq.Socket.shadow(socket.underlying)``). If the reply has already
landed (its command is in the mailbox) when that send runs, the send drains the mailbox, the fd is no longer
readable, and pyzmq's asyncio wrapper is never told to look again (it re-checks ``ZMQ_EVENTS`` only after sends made
through the wrapper). The reply sits in the socket until the poll times out; then ``poll(0)`` finds it at once.

This script replays that order deterministically (a ROUTER plays the kernel), and compares three ways of sending the
``comm_msg``: through ``Session.send`` (what nbclient does), through the asyncio wrapper (``send_multipart`` on the
asyncio socket), or not at all. Prints, per way, how long the poll took to see a reply that was there all along::

    python benchmarks/stall/lost_wakeup.py [--trials 20] [--timeout 2]
"""
from __future__ import annotations

import argparse
import asyncio
import time

import zmq
import zmq.asyncio
from jupyter_client.session import Session

WAYS = ("session", "asyncio", "none")


async def one_trial(way: str, timeout_s: float, settle: float = 0.02) -> float:
    """Seconds the shell poll took (from its start) to report a reply that arrived before the client's ``comm_msg``
    send: about ``0.02 + settle`` when the poll is woken, about ``timeout_s`` when the wake-up was lost.

    ``settle``: how long the loop is kept busy after the kernel's send, so that the reply has landed (libzmq's I/O
    thread has queued it and signalled the socket) before the client sends."""
    actx, sctx = zmq.asyncio.Context(), zmq.Context()
    kernel = sctx.socket(zmq.ROUTER)
    port = kernel.bind_to_random_port("tcp://127.0.0.1")
    shell = actx.socket(zmq.DEALER)
    shell.connect(f"tcp://127.0.0.1:{port}")
    session = Session(key=b"")
    try:
        await shell.send_multipart([b"execute_request"])      # the client's request ...
        ident, _ = kernel.recv_multipart()                    # ... read by the kernel
        t0 = time.perf_counter()
        poll = asyncio.ensure_future(shell.poll(int(timeout_s * 1000)))  # nbclient: wait for the reply
        await asyncio.sleep(0.02)                             # the poll is armed, nothing to read yet
        kernel.send_multipart([ident, b"execute_reply"])      # the kernel replies ...
        time.sleep(settle)                                    # ... and the reply lands while the loop is busy
        if way == "session":                                  # nbclient's Output widget: comm_msg on the shell
            session.send(shell, "comm_msg", {"comm_id": "x", "data": {"method": "update"}})
        elif way == "asyncio":
            shell.send_multipart([b"comm_msg"])
        events = await poll
        waited = time.perf_counter() - t0
        if not events & zmq.POLLIN:
            raise RuntimeError("the reply was not in the socket after the poll")
        return waited
    finally:
        shell.close(linger=0)
        kernel.close(linger=0)
        actx.term()
        sctx.term()


async def main_async(trials: int, timeout_s: float) -> None:
    print(f"pyzmq {zmq.__version__} | libzmq {zmq.zmq_version()} | poll timeout {timeout_s:g} s "
          f"| {trials} trials per way")
    for way in WAYS:
        waits = [await one_trial(way, timeout_s) for _ in range(trials)]
        lost = sum(w > timeout_s / 2 for w in waits)
        print(f"comm_msg sent via {way:8s}: reply seen late (waited ~ the poll timeout) in {lost}/{trials} trials; "
              f"median wait {sorted(waits)[trials // 2]:.3f} s", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=2.0, help="the shell poll's timeout in seconds")
    args = parser.parse_args()
    asyncio.run(main_async(args.trials, args.timeout))
