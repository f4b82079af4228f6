"""Exposure: the emulator listens on loopback unless told otherwise, says so loudly when it is not,
keeps the fault admin endpoint loopback-only, and keeps its OIDC signing key owner-only."""
from __future__ import annotations

import os
import socket
import stat
import urllib.error
import urllib.request

import pytest
from rel_helpers import QUEUE, EmulatorProcess

from cloudtasks_emulator.core.oidc import KEY_FILE_NAME

LISTEN = "0A"
# 127.0.0.1 in /proc/net/tcp, and as grpcio may bind it: IPv4-mapped in /proc/net/tcp6; ::1
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}
ANY = {"00000000", "00000000000000000000000000000000"}


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp[6]) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == LISTEN and int(hex_port, 16) == port:
                found.add(address)
    return found


def _ports(emu: EmulatorProcess) -> list[int]:
    return [int(emu.grpc_target.rsplit(":", 1)[1]), int(emu.http_url.rsplit(":", 1)[1])]


def _other_local_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=5):
            return True
    except OSError:
        return False


def test_binds_loopback_by_default_and_stays_quiet(tmp_path):
    with EmulatorProcess(["--port", "0", "--http-port", "0", "--queue", QUEUE], tmp_path / "emu.log") as emu:
        assert emu.grpc_target.startswith("127.0.0.1:") and emu.http_url.startswith("http://127.0.0.1:")
        for port in _ports(emu):
            addresses = _listening(port)
            assert addresses, f"nothing listens on {port}"
            assert addresses <= LOOPBACK, f"port {port} listens on {addresses}, not only on loopback"
            other = _other_local_address()
            if other:
                assert not _connects(other, port), f"reachable on {other}:{port}"
        assert "WARNING" not in emu.stderr()


def test_binding_all_interfaces_warns_loudly(tmp_path):
    with EmulatorProcess(["--host", "0.0.0.0", "--port", "0", "--http-port", "0", "--queue", QUEUE],
                         tmp_path / "emu.log") as emu:
        log = emu.stderr()
        assert "WARNING" in log and "0.0.0.0" in log and "not loopback" in log, log
        assert "no authentication" in log
        for port in _ports(emu):
            assert _listening(port) & ANY, f"--host 0.0.0.0 but port {port} listens on {_listening(port)}"


def test_fault_admin_endpoint_refuses_non_loopback_clients(tmp_path):
    other = _other_local_address()
    if other is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with EmulatorProcess(["--host", "0.0.0.0", "--port", "0", "--http-port", "0", "--queue", QUEUE],
                         tmp_path / "emu.log") as emu:
        port = int(emu.http_url.rsplit(":", 1)[1])
        body = b'{"rules": {"*": {"error": 1}}}'
        request = urllib.request.Request(f"http://{other}:{port}/_emulator/faults", data=body, method="PUT",
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 403
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/faults", timeout=10) as answer:
            assert b'"enabled": false' in answer.read().replace(b'"enabled":false', b'"enabled": false')


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_oidc_key_is_per_data_dir_and_owner_only(tmp_path, umask):
    keys = []
    for name in ("a", "b"):
        data_dir = tmp_path / name
        with EmulatorProcess(["--port", "0", "--http-port", "0", "--data-dir", str(data_dir)],
                             tmp_path / f"{name}.log", umask=umask):
            pass
        key = data_dir / KEY_FILE_NAME
        mode = stat.S_IMODE(os.stat(key).st_mode)
        assert mode == 0o600, f"{key} has mode {oct(mode)}"
        assert os.stat(key).st_uid == os.getuid()
        keys.append(key.read_bytes())
    assert keys[0] != keys[1], "two data dirs share a signing key"
    # a restart on the same data dir keeps its key (workers that cached the JWKS keep working)
    with EmulatorProcess(["--port", "0", "--http-port", "0", "--data-dir", str(tmp_path / "a")],
                         tmp_path / "a2.log", umask=umask):
        pass
    assert (tmp_path / "a" / KEY_FILE_NAME).read_bytes() == keys[0]


def test_database_in_the_data_dir_is_owner_only_whatever_the_umask(tmp_path):
    data_dir = tmp_path / "data"
    with EmulatorProcess(["--port", "0", "--http-port", "0", "--data-dir", str(data_dir), "--queue", QUEUE],
                         tmp_path / "db.log", umask=0o000):
        pass
    files = [p for p in data_dir.iterdir() if p.name.startswith("emulator.sqlite3")]
    assert files, "no database file in the data dir"
    for path in files:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o077 == 0, f"{path.name} is readable by others: {oct(mode)}"
    assert stat.S_IMODE(os.stat(data_dir).st_mode) & 0o077 == 0
