"""Faults for the fault suite: a store that goes away for a while, and a machine lost with its processes.

``StoreOutageProxy`` is a loopback TCP proxy in front of PostgreSQL. The store URL points at it, so the test
decides when "the database" is reachable: ``outage()`` cuts every open connection and refuses new ones until
``restore()`` (or for a fixed time); ``outage_on(b"...")`` starts that outage at the moment a query containing
the given SQL passes through, so the fault lands at a chosen step of a run instead of at a guessed moment.
The proxy counts every connection attempt and whether it was refused, which is how a test proves that retries
are bounded.

``kill_machine`` freezes a process and everything it started, then SIGKILLs them all: no ``finally``, no
state report, no lease release — what a worker host that loses power leaves behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url


@dataclass
class Attempt:
    """One connection attempt the proxy saw: when, and whether it was refused (the store was down)."""

    at: float
    refused: bool


class StoreOutageProxy:
    """A TCP forwarder on a free loopback port to ``upstream`` that can play "the database is down".

    While down, a connection attempt is accepted and reset at once (RST, before any PostgreSQL handshake), which
    a client sees as the server failing the connection — and which, unlike a closed port, the proxy can count.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = 0
        self.attempts: list[Attempt] = []
        self.outage_started: float | None = None  # time.monotonic() when the store went down
        self._down = False
        self._trigger: bytes | None = None
        self._trigger_seconds: float | None = None
        self._watched: dict[bytes, int] = {}
        self._restore_timer: threading.Timer | None = None
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> StoreOutageProxy:
        """Listen on a free loopback port and forward from there."""
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="store-proxy", daemon=True).start()
        return self

    def url_for(self, database_url: str) -> str:
        """``database_url`` pointed at this proxy; plaintext, so ``outage_on`` can see the SQL go by."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.update_query_dict({"sslmode": "disable"}).render_as_string(hide_password=False)

    # --- the fault ----------------------------------------------------------------------------------------------

    def outage(self, seconds: float | None = None) -> None:
        """The store goes down now: open connections are cut, new ones refused (for ``seconds``, if given)."""
        with self._lock:
            self._down, self._trigger = True, None
            self.outage_started = time.monotonic()
            cut, self._open = list(self._open), set()
        for sock in cut:
            _reset(sock)
        if seconds is not None:
            self._restore_timer = threading.Timer(seconds, self.restore)
            self._restore_timer.daemon = True
            self._restore_timer.start()

    def outage_on(self, sql: bytes, seconds: float | None = None) -> None:
        """Go down (as ``outage``) the first time a statement containing ``sql`` is sent; that statement never
        reaches the database. ``reads(sql)`` counts how often it was sent."""
        with self._lock:
            self._trigger, self._trigger_seconds = sql, seconds
            self._watched.setdefault(sql, 0)

    def restore(self) -> None:
        """The store is back: new connections are forwarded again."""
        with self._lock:
            if self._restore_timer is not None:
                self._restore_timer.cancel()
                self._restore_timer = None
            self._down = False

    # --- what happened ------------------------------------------------------------------------------------------

    @property
    def refused(self) -> int:
        """Connection attempts refused so far."""
        return sum(1 for a in self.attempts if a.refused)

    @property
    def triggered(self) -> bool:
        """Whether the outage has started."""
        return self.outage_started is not None

    def reads(self, sql: bytes) -> int:
        """How many statements containing ``sql`` (as given to ``outage_on``) clients sent, the cut one included."""
        with self._lock:
            return self._watched[sql]

    def close(self) -> None:
        """Stop listening and cut whatever is still connected."""
        self.restore()
        if self._listener is not None:
            # shutdown first: a plain close leaves accept() blocked on the socket (Linux).
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            cut, self._open = list(self._open), set()
        for sock in cut:
            _reset(sock)

    # --- forwarding ---------------------------------------------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                down = self._down
                self.attempts.append(Attempt(time.monotonic(), refused=down))
            if down:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and self._fires(data):
                    self.outage(self._trigger_seconds)  # cuts this connection too: the statement is never forwarded
                    return
                target.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, target}
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()

    def _fires(self, data: bytes) -> bool:
        """Count the watched statements in ``data``; True (once) when it carries the pending trigger."""
        with self._lock:
            for sql in self._watched:
                self._watched[sql] += data.count(sql)
            fires = self._trigger is not None and self._trigger in data
            if fires:
                self._trigger = None  # one outage per outage_on, however many connections carry the statement
            return fires


def _reset(sock: socket.socket) -> None:
    """Close with an RST (linger 0): the peer gets "connection reset" at once instead of a polite FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


# --- a machine lost ---------------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Every process ``pid`` started, directly or not (from /proc; Prefect may put a flow run in its own
    session, so a process-group kill would miss it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # ended meanwhile
        # The command name may hold spaces and parentheses; the fields after its closing ")" do not.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_machine(pid: int) -> list[int]:
    """SIGKILL ``pid`` and all its descendants as one loss; returns their pids. Each is frozen (SIGSTOP) first, so
    none can notice another's death and report it (a worker whose flow-run process died first would tell Prefect
    the run Crashed, which a lost machine never does)."""
    victims = [pid, *descendants(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGSTOP)
    for victim in [pid, *descendants(pid)]:  # listed again: a child started between the two steps dies too
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    return victims


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Until none of ``pids`` is alive (zombies of our own children count as gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(pid)
        if not alive:
            return
        time.sleep(0.05)
    raise AssertionError(f"processes still alive after SIGKILL: {alive}")
