"""The door action with real processes and a real HTTP server on 127.0.0.1."""
import json
import shlex
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kiosk.door import DoorAction

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses sh")


def outcome_of(door: DoorAction, event_id: int = 7, name: str = "Ada Lovelace") -> tuple[str, float]:
    """Trigger the door, check trigger() itself returns at once, and wait for the outcome."""
    done = threading.Event()
    got: list[tuple[int, str]] = []

    def on_done(event: int, outcome: str) -> None:
        got.append((event, outcome))
        done.set()

    start = time.monotonic()
    thread = door.trigger(event_id, name, on_done)
    returned = time.monotonic() - start
    assert done.wait(20), "the door never reported back"
    thread.join(5)
    assert got[0][0] == event_id
    return got[0][1], returned


def test_command_gets_person_and_event_in_its_environment(tmp_path):
    target = tmp_path / "opened"
    script = f'printf "%s|%s" "$KIOSK_PERSON" "$KIOSK_EVENT" > {shlex.quote(str(target))}'
    door = DoorAction.from_config(command=shlex.join(["sh", "-c", script]))
    outcome, _ = outcome_of(door, 42, "Ada; rm -rf /")  # a name is data, never shell syntax
    assert outcome == "ok"
    assert target.read_text() == "Ada; rm -rf /|42"


def test_touch_command(tmp_path):
    target = tmp_path / "door file"
    door = DoorAction.from_config(command=f"touch {shlex.quote(str(target))}")
    assert outcome_of(door)[0] == "ok"
    assert target.exists()


def test_failing_command_reports_its_exit_status():
    door = DoorAction.from_config(command="sh -c 'echo relay jammed >&2; exit 3'")
    assert outcome_of(door)[0] == "failed: exit 3"


def test_missing_command_is_reported():
    door = DoorAction.from_config(command="/nonexistent/open-door --now")
    outcome, _ = outcome_of(door)
    assert outcome.startswith("failed: command not found")


def test_slow_command_times_out_without_blocking_the_caller():
    door = DoorAction.from_config(command="sleep 10", timeout=0.5)
    start = time.monotonic()
    outcome, returned = outcome_of(door)
    assert outcome == "timeout"
    assert returned < 0.2  # trigger() never waits for the door
    assert time.monotonic() - start < 5


class _Recorder(BaseHTTPRequestHandler):
    requests: list = []
    status = 200
    delay = 0.0

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).requests.append((self.path, self.headers["Content-Type"], json.loads(body)))
        time.sleep(type(self).delay)
        self.send_response(type(self).status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Recorder,), {"requests": [], "status": 200, "delay": 0.0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, handler, f"http://127.0.0.1:{httpd.server_address[1]}/door/open"
    httpd.shutdown()
    httpd.server_close()


def test_url_receives_a_json_post(server):
    _, handler, url = server
    assert outcome_of(DoorAction.from_config(url=url), 9, "Ada")[0] == "ok"
    assert handler.requests == [("/door/open", "application/json", {"event": 9, "person": "Ada"})]


def test_url_error_status_is_reported(server):
    _, handler, url = server
    handler.status = 500
    assert outcome_of(DoorAction.from_config(url=url))[0] == "failed: HTTP 500"


def test_slow_url_times_out(server):
    _, handler, url = server
    handler.delay = 2.0
    assert outcome_of(DoorAction.from_config(url=url, timeout=0.3))[0] == "timeout"


def test_unreachable_url_is_reported():
    # A port nothing listens on: bind one, note it, close it.
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome, _ = outcome_of(DoorAction.from_config(url=f"http://127.0.0.1:{port}/"))
    assert outcome.startswith("failed:") and "refused" in outcome.lower()


def test_wait_lets_actions_in_flight_finish(tmp_path):
    target = tmp_path / "late"
    door = DoorAction.from_config(command=shlex.join(["sh", "-c", f"sleep 0.3; touch {shlex.quote(str(target))}"]))
    door.trigger(1, "Ada")
    assert door.wait(5)
    assert target.exists()


def test_configuration_is_checked():
    assert DoorAction.from_config() is None
    assert DoorAction.from_config(command="", url="") is None
    with pytest.raises(ValueError, match="not both"):
        DoorAction.from_config(command="true", url="http://127.0.0.1/")
    with pytest.raises(ValueError, match="http"):
        DoorAction.from_config(url="file:///etc/passwd")
    with pytest.raises(ValueError, match="split"):
        DoorAction.from_config(command="echo 'unclosed")
    with pytest.raises(ValueError, match="positive"):
        DoorAction.from_config(command="true", timeout=0)


def test_a_command_that_exits_at_once_leaving_a_background_child_is_ok(tmp_path):
    # The child keeps the command's stderr open for 10 s; the command itself is done at once.
    door = DoorAction.from_config(command=shlex.join(["sh", "-c", "sleep 10 & exit 0"]), timeout=3)
    outcome, _ = outcome_of(door)
    assert outcome == "ok"


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    script = f"sleep 60 & echo $! > {shlex.quote(str(pid_file))}; wait"
    door = DoorAction.from_config(command=shlex.join(["sh", "-c", script]), timeout=1)
    outcome, _ = outcome_of(door)
    assert outcome == "timeout"
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(grandchild):
        time.sleep(0.05)
    assert not _alive(grandchild), "the hung script's child was left running"


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
