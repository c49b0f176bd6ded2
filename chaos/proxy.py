"""A TCP fault proxy between a service and the broker or a database: latency, reset, half-open, outage.

Built on the tests' :class:`~tests.support.tcp_proxy.TcpProxy` (which can only cut), so that the same
small proxy serves the tests and the chaos suite without a Toxiproxy server to install.
"""

from __future__ import annotations

import socket
import time

from tests.support.tcp_proxy import TcpProxy


class FaultProxy(TcpProxy):
    """``latency`` seconds added to every chunk each way; ``half_open()`` swallows traffic while the
    connections stay open (a peer that vanished without a FIN or RST), ``blackhole()`` and ``flow()``
    (from :class:`TcpProxy`) drop it until the route comes back; ``cut()`` resets them."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.latency = 0.0
        super().__init__(target_host, target_port)

    def _forward(self, data: bytes, sink: socket.socket) -> None:
        if self.latency:
            time.sleep(self.latency)
        sink.sendall(data)

    def half_open(self) -> None:
        self.blackhole()

    def reset(self) -> None:
        """Break every open connection (RST as the client sees it) and accept new ones at once."""
        self.cut()
        self.flow()
        self.restore()
