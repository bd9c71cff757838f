"""Free loopback ports for services the tests start (other test sessions run on this machine at the same time)."""

import socket


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
