"""A TCP proxy in front of RabbitMQ or PostgreSQL that a test can cut and restore, or blackhole: a real
outage, seen from the service, without stopping the server the other tests use.

A blackhole is a network that drops packets without a reset: connections stay open (new ones are
accepted), every byte either way is dropped, and a peer's close is not passed on until the packets
flow again — so the server keeps a dead client's session (and its locks) as it would behind a dead
route, until its own keepalives or the restored network end it."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self._closed = False
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.flowing = threading.Event()
        self.flowing.set()
        self.accepted = 0  # connections taken, for tests that count them
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        # Sockets are closed only by the thread that reads them: eventlet forbids closing a socket
        # another greenthread is waiting on (its descriptor may be reused meanwhile).
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            client.settimeout(None)
            self.accepted += 1
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            # The connect's timeout must not stay on the link: an idle connection is no fault.
            upstream.settimeout(None)
            with self._lock:
                self._links += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self.listener.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self.flowing.is_set():
                    self._forward(data, sink)
        except OSError:
            pass
        finally:
            self.flowing.wait()  # a blackhole drops the FIN too: the other side learns nothing yet
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)  # wakes the other direction's reader
            source.close()

    def _forward(self, data: bytes, sink: socket.socket) -> None:
        sink.sendall(data)

    def blackhole(self) -> None:
        """Drop every byte either way, open connections and new ones alike, and answer nothing."""
        self.flowing.clear()

    def flow(self) -> None:
        """End the blackhole: bytes (and the closes held back) pass again."""
        self.flowing.set()

    def cut(self) -> None:
        """Refuse new connections and break the open ones."""
        self.up = False
        with self._lock:
            links, self._links = self._links, []
        for sock in links:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.flow()
        self.cut()
        self._closed = True
