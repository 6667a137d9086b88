"""chatsys-web <ini> [--workers N]: the web on every core, as N stock waitress processes.

waitress serves from one process, so from one core (the GIL).  This launcher forks N workers;
each loads the application from the ini and serves it with ``waitress.create_server`` on a
listening socket of its own, bound to the ini's ``[server:main] listen`` address with
``SO_REUSEPORT``, so the kernel spreads new connections across the workers.  The launcher
restarts a worker that dies and passes SIGTERM/SIGINT on.  A worker told to stop goes on serving
until no request is in its application (and a moment more for their answers to go out), at most
``GRACE`` seconds, then ends waitress's loop as ``waitress.serve`` does on Ctrl-C.  ``pserve
<ini>`` runs the same application in one waitress process.

Prometheus metrics are aggregated across workers through prometheus_client's multiprocess mode
(a directory of shared files, set up here before any worker imports the application).
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
import threading
import time

log = logging.getLogger("chatsys.web")

# [server:main] keys that are not waitress adjustments (PasteDeploy's, or the socket's).
NOT_ADJUSTMENTS = {"use", "listen", "host", "port", "sockets", "__file__", "here"}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
GRACE = 5.0  # seconds a stopping worker waits for the requests in its application
LINGER = 0.25  # seconds it then keeps its loop running, for their answers to be sent
TICK = 0.05  # how often a stopping worker looks
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


def bind(listen: str, backlog: int) -> socket.socket:
    """A listening socket on ``host:port`` that other processes may bind too (SO_REUSEPORT)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, int(port)))
    sock.listen(backlog)
    return sock


class InFlight:
    """WSGI middleware: how many requests are inside the application right now."""

    def __init__(self, app):
        self.app = app
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            self.count += 1
        try:
            return self.app(environ, start_response)
        finally:
            with self.lock:
                self.count -= 1


def serve(config_uri: str, listen: str, adjustments: dict) -> None:
    """One worker (in the forked child): load the app, then serve until SIGTERM or SIGINT."""
    app: InFlight | None = None
    deadline = idle_since = None

    def stop(signum, frame):
        nonlocal deadline
        if deadline is None:
            deadline = time.monotonic() + GRACE
            signal.setitimer(signal.ITIMER_REAL, TICK, TICK)

    def tick(signum, frame):
        # In the main thread, between rounds of waitress's loop: SystemExit ends the loop (as
        # Ctrl-C does for waitress.serve) once the application is idle, or at the deadline.
        nonlocal idle_since
        now = time.monotonic()
        if app is not None and app.count:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        if now >= deadline or (idle_since is not None and now - idle_since >= LINGER):
            raise SystemExit(0)

    signal.signal(signal.SIGALRM, tick)
    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    code = 0
    try:
        from pyramid.paster import get_app, setup_logging
        from waitress import create_server

        setup_logging(config_uri)
        app = InFlight(get_app(config_uri))
        if deadline is not None:
            return  # told to stop while the application loaded
        sock = bind(listen, int(adjustments.get("backlog", 1024)))
        server = create_server(app, sockets=[sock], **adjustments)
        log.info("web worker %d ready", os.getpid())
        server.run()
    except SystemExit:
        pass
    except Exception:
        log.exception("web worker %d failed", os.getpid())
        code = 1
    finally:
        logging.shutdown()
        os._exit(code)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config_uri", help="the ini file, e.g. development.ini")
    p.add_argument("--workers", type=int, default=available_cpus(), help="processes (default: the cores it may use)")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")

    # Before anything imports prometheus_client: every worker writes its metrics here.
    metrics_dir = tempfile.mkdtemp(prefix="chatsys-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir

    # The launcher forks and waits; each worker loads the application itself.
    import plaster

    from chatsys.runtime.process import load

    load(args.config_uri).close()  # logging, and a wrong setting stops here, not in every worker
    server_settings = plaster.get_settings(args.config_uri, "server:main")
    listen = server_settings.get("listen", "127.0.0.1:6543")
    adjustments = {k: v for k, v in server_settings.items() if k not in NOT_ADJUSTMENTS}
    # Bound here first: a port that is taken fails the launcher, not every worker in a loop.
    bind(listen, 1).close()
    log.info("serving on http://%s with %d waitress workers", listen, args.workers)

    children: dict[int, float] = {}  # pid: started
    stopping = False

    def spawn() -> None:
        # A stop signal between fork() and the child's own handler would run this handler in the
        # child: blocked across the fork, unblocked by the child once its handler is in place.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            if stopping:
                return
            pid = os.fork()
            if pid == 0:
                serve(args.config_uri, listen, adjustments)
            children[pid] = time.monotonic()
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

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    for _ in range(args.workers):
        spawn()
    try:
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None or stopping:
                continue
            log.warning("web worker %d exited (%s); starting another", pid, os.waitstatus_to_exitcode(status))
            if time.monotonic() - started < 1.0:
                time.sleep(1.0)  # do not spin if workers die at start-up
            spawn()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    sys.exit(0)
