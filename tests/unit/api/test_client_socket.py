"""TimedSocket (api/client_socket.py): blocking calls that give up without progress, on a descriptor that stays
non-blocking whatever mode gunicorn asks for."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from countdb.api.client_socket import TimedSocket

TIMEOUT = 0.3


@pytest.fixture
def pair(monkeypatch):
    """(a TimedSocket, its peer): a connected pair of Unix stream sockets."""
    monkeypatch.setattr(TimedSocket, "timeout_seconds", TIMEOUT)
    ours, peer = socket.socketpair()
    timed = TimedSocket(ours.family, ours.type, ours.proto, fileno=ours.detach())
    yield timed, peer
    timed.close()
    peer.close()


def read_into(peer: socket.socket, received: bytearray, total: int, pause: float = 0.0) -> None:
    """Read from `peer` into `received` until it holds `total` bytes, pausing after each read."""
    while len(received) < total:
        received.extend(peer.recv(256 * 1024))
        time.sleep(pause)


def test_switching_modes_leaves_the_descriptor_non_blocking(pair):
    timed, _ = pair
    for mode in (True, False, True):
        timed.setblocking(mode)
        assert os.get_blocking(timed.fileno()) is False
    timed.settimeout(None)
    assert os.get_blocking(timed.fileno()) is False
    assert timed.gettimeout() == TIMEOUT


def test_a_blocking_read_waits_for_the_bytes(pair):
    timed, peer = pair
    timed.setblocking(True)
    threading.Timer(0.1, peer.sendall, [b"late"]).start()
    assert timed.recv(16) == b"late"


def test_a_blocking_read_gives_up_after_the_timeout_as_a_reset(pair):
    timed, _ = pair
    timed.setblocking(True)
    began = time.monotonic()
    with pytest.raises(ConnectionResetError):
        timed.recv(16)
    assert TIMEOUT * 0.9 <= time.monotonic() - began < TIMEOUT + 1


def test_a_non_blocking_read_raises_at_once(pair):
    timed, _ = pair
    timed.setblocking(False)
    assert timed.gettimeout() == 0.0
    with pytest.raises(BlockingIOError):
        timed.recv(16)


def test_a_write_to_a_client_that_reads_nothing_fails_as_a_broken_pipe(pair):
    timed, peer = pair
    timed.setblocking(True)
    began = time.monotonic()
    with pytest.raises(BrokenPipeError):
        timed.sendall(b"x" * 16 * 2**20)
    assert time.monotonic() - began < TIMEOUT + 1
    assert peer.recv(16) == b"x" * 16  # what the kernel took was sent


def test_a_large_write_to_a_slow_reader_arrives_whole(pair):
    timed, peer = pair
    timed.setblocking(True)
    data = os.urandom(4 * 2**20)
    received = bytearray()
    reader = threading.Thread(target=read_into, args=(peer, received, len(data), 0.001))
    reader.start()
    timed.sendall(data)
    reader.join(10)
    assert bytes(received) == data


def test_sendfile_works_in_blocking_mode(pair, tmp_path):
    """gunicorn answers a WSGI file wrapper with socket.sendfile, which refuses sockets that report no timeout."""
    timed, peer = pair
    timed.setblocking(True)
    path = tmp_path / "answer.bin"
    path.write_bytes(b"0123456789" * 1000)
    with path.open("rb") as handle:
        assert timed.sendfile(handle) == 10_000
    received = bytearray()
    read_into(peer, received, 10_000)
    assert bytes(received) == path.read_bytes()


def test_a_held_head_leaves_with_the_body_in_one_write(pair):
    timed, peer = pair
    timed.setblocking(True)
    timed.hold_response_head()
    timed.sendall(b"HTTP/1.1 201 Created\r\n\r\n")
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(64)  # nothing sent yet
    timed.sendall(b'{"points":1}')
    assert peer.recv(64) == b'HTTP/1.1 201 Created\r\n\r\n{"points":1}'  # one write: one read takes it all


def test_a_held_head_with_no_body_is_sent_when_the_request_ends(pair):
    timed, peer = pair
    timed.setblocking(True)
    timed.hold_response_head()
    timed.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    timed.send_held()
    assert peer.recv(64) == b"HTTP/1.1 204 No Content\r\n\r\n"
    timed.send_held()
    timed.sendall(b"next")
    assert peer.recv(64) == b"next"  # only the head after hold_response_head() is held


def test_a_held_head_goes_first_before_a_large_body(pair):
    timed, peer = pair
    timed.setblocking(True)
    body = os.urandom(3 * 2**20)
    received = bytearray()
    reader = threading.Thread(target=read_into, args=(peer, received, 6 + len(body)))
    reader.start()
    timed.hold_response_head()
    timed.sendall(b"head\r\n")
    timed.sendall(body)
    reader.join(10)
    assert bytes(received) == b"head\r\n" + body
