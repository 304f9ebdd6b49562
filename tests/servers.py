"""Real servers for the events tests: the distribution's mosquitto broker, run as an unprivileged
user in a temporary folder, an MQTT subscriber (paho) that keeps its session across a broker
restart, and a local HTTP receiver that can be down, failing or up."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import paho.mqtt.client as mqtt

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
UNPRIVILEGED = "nobody"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, up: bool, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            if up:
                return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} still {'down' if up else 'up'} after {timeout} s")


class Mosquitto:
    """mosquitto on 127.0.0.1:port with persistence (sessions survive a restart), in its own folder."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self.port = free_port()
        (self.folder / "mosquitto.conf").write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {self.folder}/\nlog_dest file {self.folder}/mosquitto.log\n"
            "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
        self._user = pwd.getpwnam(UNPRIVILEGED) if os.geteuid() == 0 else None
        if self._user is not None:  # root: the broker runs as nobody, in a folder nobody owns
            os.chown(self.folder, self._user.pw_uid, self._user.pw_gid)
            os.chown(self.folder / "mosquitto.conf", self._user.pw_uid, self._user.pw_gid)
        self.process: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        extra = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **extra)
        wait_for_port(self.port, up=True)
        return self

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its sessions (and messages queued for them) and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(20)
        wait_for_port(self.port, up=False)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


class Subscriber:
    """Collects every message under `topics`; a persistent session (clean_session False, QoS 1),
    so that what is published while it reconnects after a broker restart is kept for it."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("face-kiosk/#", "homeassistant/#")) -> None:
        self.messages: list[tuple[str, str, bool]] = []  # (topic, payload, retained)
        self._lock = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-subscriber-{port}",
                                  clean_session=False)
        self.client.reconnect_delay_set(0.2, 1)
        self.client.on_connect = lambda c, *_: [c.subscribe(topic, qos=1) for topic in topics]
        self.client.on_message = self._on_message
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, client, userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, message.payload.decode(), bool(message.retain)))
            self._lock.notify_all()

    def wait_for(self, condition, timeout: float = 30.0) -> list[tuple[str, str, bool]]:
        with self._lock:
            assert self._lock.wait_for(lambda: condition(self.messages), timeout), self.messages
            return list(self.messages)

    def on(self, topic: str) -> list[dict]:
        with self._lock:
            return [json.loads(payload) for t, payload, _ in self.messages if t == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Receiver:
    """A webhook receiver on 127.0.0.1:port: start() brings it up, stop() takes it down; while
    `fail_next` > 0 it answers 500 and counts down. Keeps every request it answered 2xx."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict, bytes]] = []  # (headers, body)
        self.fail_next = 0
        self.failed = 0
        self._lock = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                        receiver.failed += 1
                    else:
                        receiver.received.append((dict(self.headers), body))
                    receiver._lock.notify_all()
                self.send_response(500 if failing else 204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait_for(self, count: int, timeout: float = 30.0) -> list[tuple[dict, bytes]]:
        with self._lock:
            assert self._lock.wait_for(lambda: len(self.received) >= count, timeout), self.received
            return list(self.received)
