"""``backdrop serve`` over HTTPS, with a real client: a self-signed certificate made here, the
page's ``/config`` fetched over TLS and a WebRTC round trip (aiortc) whose offer goes over HTTPS,
as ``tests/test_web.py`` does over HTTP. And the flags: the TLS ones never collide with the
chroma key's ``--key`` (which once swallowed the TLS key: https could not start), nor are they
guessed from a prefix."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiortc", reason="the [web] extra (aiortc, aiohttp) is not installed")
pytest.importorskip("aiohttp", reason="the [web] extra (aiortc, aiohttp) is not installed")

from backdrop.web.client import Client  # noqa: E402
from backdrop.web.server import ServerConfig, ServerThread  # noqa: E402
from test_web import arun, check_composite, frames, regions  # noqa: E402,F401  (fixtures: real clip pixels)

REPO = Path(__file__).resolve().parents[1]


def _with_cryptography(cert: Path, key: Path) -> bool:
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        return False
    pkey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    crt = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pkey.public_key())
           .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
           .not_valid_after(now + datetime.timedelta(days=1)).add_extension(san, critical=False)
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
           .sign(pkey, hashes.SHA256()))
    cert.write_bytes(crt.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(pkey.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return True


def _with_openssl(cert: Path, key: Path) -> bool:
    if shutil.which("openssl") is None:
        return False
    done = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                           "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    if not (_with_cryptography(cert, key) or _with_openssl(cert, key)):
        pytest.skip("neither the cryptography package nor the openssl command is there to make a certificate")
    return cert, key


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def get(url: str, cert: Path) -> tuple[int, dict, bytes]:
    with urllib.request.urlopen(url, timeout=20, context=trusting(cert)) as res:
        return res.status, dict(res.headers), res.read()


def test_https_serves_the_page_and_a_webrtc_round_trip(tls_files, frames, regions, caplog):
    cert, key = tls_files
    cfg = ServerConfig(port=0, certfile=str(cert), keyfile=str(key), background="#00ff00", marker_rows=16,
                       process_on="server")
    with ServerThread(cfg) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        status, headers, body = get(srv.url + "config", cert)
        assert status == 200 and json.loads(body)["background"] == "#00ff00"
        assert headers["X-Frame-Options"] == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        with pytest.raises(urllib.error.URLError):  # the certificate is checked: not trusted, not served
            urllib.request.urlopen(srv.url + "config", timeout=20)
        with pytest.raises(Exception):  # plain HTTP on the TLS port is no request
            urllib.request.urlopen(srv.url.replace("https:", "http:") + "config", timeout=5)

        async def main():
            import aiohttp
            from aiortc import RTCPeerConnection, RTCSessionDescription

            pub = Client(srv.url, frames, fps=30, marker=True, keep_frames=1, ssl=trusting(cert))
            await pub.connect()  # the offer and its answer over https
            await pub.wait_frames(12)
            bg, person = check_composite(pub.last_frames[-1], frames, regions, (0, 255, 0))
            assert bg < 25 and person < 20, (bg, person)
            viewer = RTCPeerConnection()
            viewer.addTransceiver("video", direction="recvonly")
            await viewer.setLocalDescription(await viewer.createOffer())
            async with aiohttp.ClientSession() as s:
                async with s.post(srv.url + "view", json={"sdp": viewer.localDescription.sdp, "type": "offer",
                                                          "token": pub.token}, ssl=trusting(cert)) as res:
                    answer = await res.json()
                    assert res.status == 200, answer
            await viewer.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
            await viewer.close()
            await pub.close()
        arun(main)
    assert not [r for r in caplog.records if r.exc_info or r.levelname == "ERROR"], caplog.text[-2000:]


def _serve(*args, timeout=30):
    env = {**os.environ, "BACKDROP_NPM_REGISTRY": "http://127.0.0.1:9"}
    return subprocess.run([sys.executable, "-m", "backdrop", "serve", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_cli_starts_https_with_tls_flags_apart_from_the_chroma_key(tls_files):
    """Was: ``--key key.pem`` was read as the chroma key (exit 2, "--key must be green, blue, ...")."""
    cert, key = tls_files
    env = {**os.environ, "BACKDROP_NPM_REGISTRY": "http://127.0.0.1:9"}
    proc = subprocess.Popen([sys.executable, "-m", "backdrop", "serve", "--port", "0", "--process-on", "server",
                             "--tls-cert", str(cert), "--tls-key", str(key), "--key", "green"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines, end = [], time.monotonic() + 90
        while time.monotonic() < end:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"open (https://127\.0\.0\.1:\d+/)", line)
            if m:
                break
        assert m, "".join(lines)
        status, _, body = get(m.group(1) + "config", cert)
        assert status == 200 and json.loads(body)["process_on"] == "server"
        # the chroma key went to the pipeline, not to TLS
        key_stage = next(s for s in json.loads(body)["pipeline"]["stages"] if s["name"] == "key")
        assert key_stage["options"][0]["default"] == "green"
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    assert rc == 143 and "Traceback" not in proc.stderr.read()


def test_tls_flags_are_never_taken_for_other_flags(tls_files):
    cert, key = tls_files
    old = _serve("--port", "0", "--cert", str(cert), "--key", str(key))  # the old spelling: one clear line
    assert old.returncode == 2 and old.stderr.count("\n") == 1, old.stderr
    assert "--key is the chroma key" in old.stderr and f"--tls-key {key}" in old.stderr
    alone = _serve("--port", "0", "--tls-cert", str(cert))
    assert alone.returncode == 2 and "--tls-cert and --tls-key go together" in alone.stderr
    for prefix in ("--tls-k", "--tls", "--ke"):  # no abbreviation is guessed
        wrong = _serve("--port", "0", "--tls-cert", str(cert), prefix, str(key))
        assert wrong.returncode == 2 and "unrecognized arguments" in wrong.stderr, (prefix, wrong.stderr)
    bad = _serve("--port", "0", "--process-on", "server", "--tls-cert", str(key), "--tls-key", str(cert))
    assert bad.returncode == 2 and "cannot load --tls-cert/--tls-key" in bad.stderr and "Traceback" not in bad.stderr
