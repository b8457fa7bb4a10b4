import contextlib
import socket

import pytest

from sim.scpi_server import ScpiServer


def echo_handler(log):
    def handle(command: str) -> str | None:
        log.append(command)
        if command == "BOOM?":
            raise RuntimeError("simulator bug")
        return command.upper() if command.endswith("?") else None

    return handle


@pytest.fixture
def server():
    log: list[str] = []
    srv = ScpiServer(echo_handler(log), name="test")
    srv.start()
    srv.log = log
    yield srv
    srv.stop()


def connect(srv: ScpiServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=2)
    return sock


def ask(sock: socket.socket, text: bytes) -> bytes:
    sock.sendall(text)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_resource_string_names_loopback_and_port(server):
    assert server.resource_name == f"TCPIP0::127.0.0.1::{server.port}::SOCKET"
    assert server.port > 0


def test_listens_on_loopback_only(server):
    assert server._server.server_address[0] == "127.0.0.1"


def test_query_answered_with_newline_and_crlf_accepted(server):
    with connect(server) as sock:
        assert ask(sock, b"idn?\r\n") == b"IDN?\n"


def test_semicolon_joined_commands_are_split_and_replies_joined(server):
    with connect(server) as sock:
        assert ask(sock, b"a?;SET 1;b?\n") == b"A?;B?\n"
    assert server.log == ["a?", "SET 1", "b?"]


def test_commands_without_reply_send_nothing_and_blank_lines_are_ignored(server):
    with connect(server) as sock:
        sock.sendall(b"SET 1\n\n   \n")
        assert ask(sock, b"x?\n") == b"X?\n"
    assert server.log == ["SET 1", "x?"]


def test_handler_exception_keeps_connection_alive(server):
    with connect(server) as sock:
        sock.sendall(b"BOOM?\n")
        assert ask(sock, b"ok?\n") == b"OK?\n"


def test_non_ascii_bytes_do_not_kill_the_server(server):
    with connect(server) as sock:
        assert ask(sock, b"\xff\xfe?\n") == b"??" + b"?\n"  # undecodable bytes answered as '?'
        assert ask(sock, b"ok?\n") == b"OK?\n"


def test_mute_swallows_replies(server):
    server.mute = True
    with connect(server) as sock:
        sock.settimeout(0.2)
        sock.sendall(b"q?\n")
        with pytest.raises(socket.timeout):
            sock.recv(10)
    assert server.log == ["q?"]


def test_drop_connections_closes_clients(server):
    sock = connect(server)
    assert ask(sock, b"q?\n") == b"Q?\n"
    server.drop_connections()
    sock.settimeout(1)
    assert sock.recv(10) == b""
    sock.close()


def test_stop_is_clean_and_idempotent_and_refuses_new_clients():
    srv = ScpiServer(lambda c: None)
    srv.start()
    port = srv.port
    client = connect(srv)
    srv.stop()
    srv.stop()
    assert not srv.running
    client.settimeout(1)
    with contextlib.suppress(ConnectionResetError):  # a reset tells the client as well as a close
        assert client.recv(10) == b""
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5)
    with pytest.raises(RuntimeError, match="start"):
        _ = srv.port
