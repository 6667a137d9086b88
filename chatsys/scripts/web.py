"""chatsys-web <ini> [--workers N]: the web on every core — N waitress processes, one socket.

Waitress is one process, so one core (the GIL).  This launcher binds the listening socket from the
ini's ``[server:main] listen`` once, forks N workers that each load the app and serve that socket
with waitress (the kernel hands each new connection to one of them, and the workers keep their
shares of open connections even: chatsys.balance), restarts a worker that dies, and
passes SIGTERM/SIGINT on so that workers finish their requests and stop.  ``pserve <ini>``
still works for a single process, but with waitress's stock channel: see chatsys.serving for
the busy loop that chatsys-web's workers avoid.

Prometheus metrics are aggregated across workers through prometheus_client's multiprocess mode
(a directory of shared files, set up here before any worker imports the app).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from chatsys.balance import Balance  # the standard library only: the master stays small

log = logging.getLogger("chatsys.web")

NOT_ADJUSTMENTS = {"use", "listen", "host", "port", "sockets", "__file__", "here"}


def bind(listen: str, backlog: int) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


# The workers' select() timeout, in place of waitress's asyncore_loop_timeout (a whole number of
# seconds): how soon a worker notices, with no event of its own, that a peer went quiet or that
# it may listen again (chatsys.balance).  Idle, ten rounds a second cost 0.3% of a core.
ROUND = 0.1
# On SIGTERM a worker stops listening and lets requests in progress finish for up to this long.
GRACE = 5.0
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def serve(config_uri: str, sock: socket.socket, adjustments: dict, balance: Balance, slot: int) -> None:
    """One worker: load the app from the ini and serve the shared socket until told to stop.

    Runs in the forked child with the stop signals blocked (see ``main``): its own handler is in
    place before they are let through, so a stop that arrives while the app loads is kept.
    """
    stopping: list[int] = []
    server = None

    def stop(signum, frame) -> None:
        stopping.append(signum)
        if server is not None:
            server.trigger.pull_trigger()  # end the select() in progress, whichever sockets it watches

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    code = 0
    try:
        from pyramid.paster import get_app, setup_logging
        from waitress import wasyncore

        from chatsys.serving import drain, make_server

        setup_logging(config_uri)
        app = get_app(config_uri)
        if stopping:
            return  # told to stop while the app loaded
        server = make_server(app, sockets=[sock], balance=balance, slot=slot, stale_after=5 * ROUND, **adjustments)
        log.info("web worker %d ready (slot %d)", os.getpid(), slot)
        adj = server.adj
        # waitress's loop, one round at a time, until a signal says stop.  (Closing the listening
        # socket under select() only ended waitress's own loop while select() watched that
        # socket, which a worker standing back for the balance does not.)
        while not stopping:
            wasyncore.loop(timeout=ROUND, map=server._map, use_poll=adj.asyncore_use_poll, count=1)
        # Stop listening (the trigger stays open: request threads still pull it), let the other
        # workers take the new connections, answer what was received, and close the connections.
        wasyncore.dispatcher.close(server)
        balance.clear(slot)
        deadline = time.monotonic() + GRACE
        drain(server, deadline, ROUND)
        server.task_dispatcher.shutdown(timeout=max(deadline - time.monotonic(), 0.1))
    except Exception:
        log.exception("web worker %d failed", os.getpid())
        code = 1
    finally:
        # os._exit runs no atexit hook: write the access-log lines still pending (the module
        # comes with the app; the master must not import prometheus_client before the app does),
        # waiting no longer than a moment for a log stream that does not take them.
        accesslog = sys.modules.get("chatsys.accesslog")
        if accesslog is not None:
            try:
                accesslog.flush(timeout=2.0)
            except BaseException:
                pass  # the worker exits all the same
        os._exit(code)


CGROUP_CPU_MAX = "/sys/fs/cgroup/cpu.max"


def available_cpus(cpu_max: str = CGROUP_CPU_MAX) -> int:
    """The cores this process may use: those it may be scheduled on (a container's cpuset), and no
    more than its cgroup v2 CPU quota rounded up (``docker run --cpus``, a compose ``cpus:``).
    ``os.cpu_count()`` sees neither: in a container limited to 2 CPUs on a 64-core host it says 64,
    and 64 workers with a database pool each would crowd out MySQL's connection limit."""
    cpus = len(os.sched_getaffinity(0))
    try:
        with open(cpu_max) as handle:
            quota, period = handle.read().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config_uri", help="the ini file, e.g. development.ini")
    p.add_argument(
        "--workers", type=int, default=available_cpus(), help="processes (default: the cores this process may use)"
    )
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")

    # Before anything imports prometheus_client: every worker writes its metrics here.
    metrics_dir = tempfile.mkdtemp(prefix="chatsys-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    # The master only binds, forks and waits: it loads no application code (each worker loads
    # its own after the fork), which keeps it small.
    import plaster

    plaster.setup_logging(args.config_uri)
    server_settings = plaster.get_settings(args.config_uri, "server:main")
    listen = server_settings.get("listen", "127.0.0.1:6543")
    adjustments = {k: v for k, v in server_settings.items() if k not in NOT_ADJUSTMENTS}
    sock = bind(listen, int(adjustments.get("backlog", 1024)))
    log.info("serving on http://%s with %d waitress workers", listen, args.workers)

    balance = Balance(args.workers)
    children: dict[int, tuple[float, int]] = {}  # pid: (started, balance slot)
    stopping = False

    def spawn(slot: int) -> None:
        balance.clear(slot)
        # A stop signal between fork() and the child's own handler would run the master's
        # handler in the child, and one before the child is registered would never reach it.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if stopping:  # a stop that came before the block: no new worker
                return
            pid = os.fork()
            if pid == 0:
                serve(args.config_uri, sock, adjustments, balance, slot)
            children[pid] = (time.monotonic(), slot)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(args.workers):
        spawn(slot)
    try:
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            child = children.pop(pid, None)
            if child is None:
                continue
            started, slot = child
            balance.clear(slot)  # its peers stop waiting for it to take connections
            if stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            log.warning("web worker %d exited (%s); starting another", pid, code)
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)  # do not spin if workers die at start-up
            if not stopping:  # a stop may have come during the pause
                spawn(slot)
    finally:
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(0)
