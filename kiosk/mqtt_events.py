"""Events to an MQTT broker (paho-mqtt), with Home Assistant discovery.

Topics, under a prefix (default face-kiosk) and the door's id:

    face-kiosk/<door>/availability     "online" / "offline" (retained; "offline" is the last will)
    face-kiosk/<door>/access           every access decision (JSON, not retained)
    face-kiosk/<door>/lockout          recognition paused after too many denials
    face-kiosk/<door>/camera           camera state changes
    face-kiosk/<door>/tamper           tamper findings
    face-kiosk/<door>/state/access     the last access decision (retained: for dashboards)
    face-kiosk/<door>/state/camera     the camera's current state (retained)

Event topics are not retained, so an automation that opens something on a grant never sees an
old grant again when it reconnects. On every connection the kiosk publishes Home Assistant
discovery configs (homeassistant/sensor/face_kiosk_<door>/.../config, retained) for three
sensors: the last decision, the last person, the camera's state, all tied to availability.

Messages go out with QoS 1 and leave the outbox only once the broker has acknowledged them.
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

from kiosk import __version__
from kiosk.events import ACCESS, CAMERA, Destination, dumps

log = logging.getLogger(__name__)

PASSWORD_ENV_VAR = "KIOSK_MQTT_PASSWORD"
DEFAULT_PREFIX = "face-kiosk"
DISCOVERY_PREFIX = "homeassistant"
ACK_WAIT_S = 30.0  # past this an unacknowledged message is sent again (the broker may have lost it)


class MqttDestination(Destination):
    name = "mqtt"

    def __init__(self, url: str, door: str, *, prefix: str = DEFAULT_PREFIX, ca_file: str | None = None,
                 discovery_prefix: str | None = DISCOVERY_PREFIX, client_id: str | None = None,
                 first_retry_s: float = 0.5, last_retry_s: float = 2.0) -> None:
        """`url`: mqtt://[user[:password]@]host[:port] or mqtts:// for TLS (port 8883, the system's
        CAs or `ca_file`); the password may come from $KIOSK_MQTT_PASSWORD instead."""
        # Short retries: a broker that is back takes the queue at once (it is local and cheap to ask).
        super().__init__(first_retry_s, last_retry_s)
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"the MQTT broker must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], got {url!r}")
        try:
            self.port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise ValueError(f"the MQTT broker's port is not a number: {url!r}") from exc
        self.host = parts.hostname
        self.tls = parts.scheme == "mqtts"
        self.base = f"{prefix.strip('/')}/{door}"
        self.door = door
        self.discovery_prefix = discovery_prefix
        self.availability = f"{self.base}/availability"
        self._connected = threading.Event()
        self._acked: set[int] = set()
        self._ack = threading.Condition()

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"face-kiosk-{door}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else os.environ.get(PASSWORD_ENV_VAR)
        if username is not None:
            client.username_pw_set(username, password)
        if self.tls:
            client.tls_set(ca_certs=ca_file)
        client.will_set(self.availability, "offline", qos=1, retain=True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self.client = client

    def describe(self) -> str:
        return f"MQTT broker {self.host}:{self.port}"

    # -- what is queued --------------------------------------------------------------

    def messages(self, event: dict[str, Any]) -> list[str]:
        payload = dumps(event)
        out = [dumps({"topic": f"{self.base}/{event['type']}", "payload": payload, "retain": False})]
        if event["type"] in (ACCESS, CAMERA):
            out.append(dumps({"topic": f"{self.base}/state/{event['type']}", "payload": payload, "retain": True}))
        return out

    # -- sending ----------------------------------------------------------------------

    def open(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=30)
        self.client.loop_start()  # connects, and reconnects after any loss, on its own thread

    def send(self, body: str) -> bool:
        if not self._connected.wait(1.0):
            self.problem = "not connected"
            return False
        message = json.loads(body)
        info = self.client.publish(message["topic"], message["payload"], qos=1, retain=message["retain"])
        # Acknowledged, or still waiting: paho sends it again itself after a reconnection.
        deadline = time.monotonic() + ACK_WAIT_S
        with self._ack:
            while info.mid not in self._acked:
                left = deadline - time.monotonic()
                if left <= 0 or self._stop.is_set():
                    self.problem = "no acknowledgement"
                    return False
                self._ack.wait(min(left, 0.5))
            self._acked.discard(info.mid)
        return True

    def shut(self) -> None:
        if self._connected.is_set():
            self.client.publish(self.availability, "offline", qos=1, retain=True).wait_for_publish(2.0)
        self._connected.clear()  # a disconnection asked for: nothing to warn about
        self.client.disconnect()
        self.client.loop_stop()

    # -- paho's callbacks (its network thread) ------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("%s refused the connection: %s", self.describe(), reason_code)
            return
        log.info("connected to %s", self.describe())
        client.publish(self.availability, "online", qos=1, retain=True)
        if self.discovery_prefix:
            for topic, config in self.discovery().items():
                client.publish(topic, dumps(config), qos=1, retain=True)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._connected.is_set():
            log.warning("lost the connection to %s (%s); reconnecting", self.describe(), reason_code)
        self._connected.clear()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._ack:
            if len(self._acked) > 10_000:  # acknowledgements nobody waits for any more
                self._acked.clear()
            self._acked.add(mid)
            self._ack.notify_all()

    # -- Home Assistant ---------------------------------------------------------------

    def discovery(self) -> dict[str, dict[str, Any]]:
        """Home Assistant MQTT discovery: topic -> config, for the door's three sensors."""
        node = f"face_kiosk_{self.door.replace('-', '_')}"
        device = {"identifiers": [node], "name": f"Face kiosk {self.door}", "manufacturer": "face-kiosk",
                  "model": "face-recognition access kiosk", "sw_version": __version__}
        sensors = {
            "last_decision": ("Last decision", f"{self.base}/state/access", "{{ value_json.decision }}",
                              "mdi:door"),
            "last_person": ("Last person", f"{self.base}/state/access",
                            "{{ value_json.name if value_json.name else 'unknown' }}", "mdi:account"),
            "camera": ("Camera", f"{self.base}/state/camera", "{{ value_json.state }}", "mdi:cctv"),
        }
        return {
            f"{self.discovery_prefix}/sensor/{node}/{key}/config": {
                "name": name, "unique_id": f"{node}_{key}", "object_id": f"{node}_{key}",
                "state_topic": topic, "value_template": template, "json_attributes_topic": topic,
                "availability_topic": self.availability, "icon": icon, "device": device,
            }
            for key, (name, topic, template, icon) in sensors.items()
        }
