"""chatsys-web's workers share their connections out evenly.

The workers all accept from one listening socket, and the kernel gives each new connection to
whichever worker calls ``accept()`` first.  Clients keep their connections open, so a skew at
connect time lasts: runs of 32 connections measured splits of 4/28, 11/21 and 13/19.  A client
that opens its connections in a burst, as a proxy or wrk does, gets the worst of it: the worker
that is free at that moment takes nearly all of them, and its GIL binds when requests are heavy
(50-message pages, 8 runs each: 710 reads/s and p99 110 ms skewed, 793/s and 93 ms balanced;
single-message reads showed no difference beyond noise).

With a :class:`Balance` shared by the workers, each worker publishes its number of open
connections every time its event loop goes round, and stops listening while it holds more than
``SLACK`` connections above another live worker.  Standing back, it wakes that worker (a byte on
the worker's own socket pair), whose loop may be asleep with its listening socket left out, so
it looks again at once.  The worker with the fewest connections never stands back, so some
worker is always listening or about to be.  A worker whose loop has not gone round for a few
loop timeouts (hung, or gone before the launcher noticed) is left out of the comparison.

There is no lock: a worker killed while holding one would freeze every other worker and the
launcher.  The price is that two workers deciding at the same instant, each on the other's
previous count, can both stand back, as can a worker that read a slot while it was being
written; neither lasts longer than one round of their loops, which chatsys-web keeps short
(``chatsys.scripts.web.ROUND``).  A worker that leaves, or a slot the launcher clears, wakes all
the others, so none keeps standing back for a worker that is gone.
"""

from __future__ import annotations

import mmap
import socket
import struct
import time

# A worker may hold this many connections more than another and still listen.
SLACK = 1


class Balance:
    """Per-worker connection counts in memory shared across ``fork()``: make it before forking.

    Slot ``i`` belongs to the worker started in it and holds its open connections, whether its
    listening socket is in its next ``select()``, and when it last said so (``time.monotonic()``,
    which is system-wide).  A slot whose time is 0 is empty.
    """

    SLOT = struct.Struct("qqd")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.memory = mmap.mmap(-1, self.SLOT.size * workers)  # MAP_SHARED: one copy for all
        self.wakers = [socket.socketpair() for _ in range(workers)]
        for receiver, sender in self.wakers:
            receiver.setblocking(False)
            sender.setblocking(False)

    def waker(self, slot: int) -> socket.socket:
        """The socket the worker in ``slot`` watches: readable when another worker wakes it."""
        return self.wakers[slot][0]

    def clear(self, slot: int) -> None:
        """The worker in ``slot`` is gone or going: leave it out, and wake the others to look again."""
        self.SLOT.pack_into(self.memory, self.SLOT.size * slot, 0, 0, 0.0)
        for other in range(self.workers):
            if other != slot:
                self.wake(other)

    def wake(self, slot: int) -> None:
        try:
            self.wakers[slot][1].send(b"!")
        except BlockingIOError:
            pass  # its socket is full of wake-ups already

    def slots(self) -> list[tuple[int, bool, float]]:
        """(connections, listening, last seen) of every slot."""
        size = self.SLOT.size
        return [
            (count, bool(listening), beat)
            for count, listening, beat in (self.SLOT.unpack_from(self.memory, size * i) for i in range(self.workers))
        ]

    def listen(self, slot: int, connections: int, willing: bool, stale_after: float) -> bool:
        """Whether the worker in ``slot``, holding ``connections``, should listen now; recorded.

        ``willing`` is the worker's own answer (False at its connection limit).
        """
        now = time.monotonic()
        asleep: list[int] = []
        if willing:
            for other, (count, listening, beat) in enumerate(self.slots()):
                if other != slot and now - beat < stale_after and connections > count + SLACK:
                    willing = False
                    if not listening:
                        asleep.append(other)
        self.SLOT.pack_into(self.memory, self.SLOT.size * slot, connections, willing, now)
        for other in asleep:
            self.wake(other)
        return willing
