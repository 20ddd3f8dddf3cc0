"""TLS to the broker (rabbitmq.tls): a TLS listener started on the local RabbitMQ for this test, with a CA the
test generates, that verifies our server certificate and asks for a client certificate."""
from __future__ import annotations

import base64
import socket
import subprocess
from pathlib import Path

import pytest

from common.broker import Broker
from common.config import RabbitMQConfig
from tests.conftest import RABBIT_HOST, rabbitmqctl


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
            "-days", "2", "-subj", f"/CN={name}", cwd=folder)


def make_cert(folder: Path, ca: str, name: str, subject: str, alt: str | None = None) -> None:
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
            f"/CN={subject}", cwd=folder)
    extra = []
    if alt:
        (folder / f"{name}.ext").write_text(f"subjectAltName={alt}\n")
        extra = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", *extra, cwd=folder)


def der_b64(folder: Path, *args: str) -> str:
    out = subprocess.run(["openssl", *args, "-outform", "DER"], cwd=folder, check=True, capture_output=True,
                         timeout=60)
    return base64.b64encode(out.stdout).decode()


@pytest.fixture
def tls_listener(tmp_path, own_rabbit):
    """A TLS listener on a free loopback port of the running broker, its certificates handed over in memory
    (the broker's own user could not read the test's files); stopped after the test."""
    make_ca(tmp_path, "ca")
    make_cert(tmp_path, "ca", "server", "localhost", "DNS:localhost,IP:127.0.0.1")
    make_cert(tmp_path, "ca", "client", "futures_scan client")
    make_ca(tmp_path, "stranger")
    cert = der_b64(tmp_path, "x509", "-in", "server.pem")
    key = der_b64(tmp_path, "pkcs8", "-topk8", "-nocrypt", "-in", "server.key")
    ca = der_b64(tmp_path, "x509", "-in", "ca.pem")
    with socket.socket() as probe:
        probe.bind((RABBIT_HOST, 0))
        port = probe.getsockname()[1]
    listener = f'{{"{RABBIT_HOST}", {port}}}'
    rabbitmqctl("eval", f"rabbit_networking:start_ssl_listener({listener}, ["
                f'{{cert, base64:decode("{cert}")}}, {{key, {{\'PrivateKeyInfo\', base64:decode("{key}")}}}}, '
                f'{{cacerts, [base64:decode("{ca}")]}}, {{verify, verify_peer}}, {{fail_if_no_peer_cert, true}}], 1).')
    yield port
    rabbitmqctl("eval", f"rabbit_networking:stop_tcp_listener({listener}).", check=False)


def broker(own_rabbit, port: int, folder: Path, **tls) -> Broker:
    config = RabbitMQConfig(host=RABBIT_HOST, port=port, user=own_rabbit.user, password=own_rabbit.password,
                            vhost=own_rabbit.vhost, tls=tls)
    return Broker(config, connect_timeout=5)


def test_tls_with_a_verified_server_and_a_client_certificate(tls_listener, own_rabbit, tmp_path):
    b = broker(own_rabbit, tls_listener, tmp_path, ca_file=str(tmp_path / "ca.pem"),
               cert_file=str(tmp_path / "client.pem"), key_file=str(tmp_path / "client.key"))
    try:
        assert b.ensure_connected()
        assert b.publish("amq.topic", "tls.check", b"{}")
        rows = rabbitmqctl("list_connections", "vhost", "ssl", "peer_cert_subject").splitlines()
        assert any(row.startswith(own_rabbit.vhost + "\ttrue") and "futures_scan client" in row for row in rows), rows
    finally:
        b.close()


def test_tls_refuses_a_server_it_cannot_verify(tls_listener, own_rabbit, tmp_path, caplog):
    client = {"cert_file": str(tmp_path / "client.pem"), "key_file": str(tmp_path / "client.key")}
    unknown_ca = broker(own_rabbit, tls_listener, tmp_path, ca_file=str(tmp_path / "stranger.pem"), **client)
    assert not unknown_ca.ensure_connected()
    wrong_name = broker(own_rabbit, tls_listener, tmp_path, ca_file=str(tmp_path / "ca.pem"),
                        server_hostname="broker.example", **client)
    assert not wrong_name.ensure_connected()
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    no_client_cert = broker(own_rabbit, tls_listener, tmp_path, ca_file=str(tmp_path / "ca.pem"))
    assert not no_client_cert.ensure_connected()  # the listener asks for one


def test_tls_settings_are_checked_and_move_the_default_port():
    assert RabbitMQConfig(tls={}).port == 5671 and RabbitMQConfig().port == 5672
    with pytest.raises(ValueError, match="cert_file and key_file go together"):
        RabbitMQConfig(tls={"cert_file": "client.pem"})
