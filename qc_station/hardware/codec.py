"""The conveyor link's line codec on the station side (protocol v1, ``firmware/protocol.md``).

A mirror of ``firmware/protocol.py`` (which must stay MicroPython-only and is not part of this
package); ``tests/test_hardware_codec.py`` checks that both produce and accept the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL_VERSION = 1
MAX_LINE = 250
SEQ_MAX = 65535

NAK_CRC = "CRC"
NAK_FORMAT = "FORMAT"
NAK_LONG = "LONG"
NAK_TYPE = "TYPE"
NAK_FIELD = "FIELD"
NAK_VERSION = "VERSION"
NAK_STATE = "STATE"

_FORBIDDEN = set("$*,\r\n")


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): ``crc16(b"123456789") == 0x29B1``."""
    crc = 0xFFFF
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


class ProtocolError(ValueError):
    """A line that must not be acted upon; ``reason`` is the NAK reason, ``seq`` is 0 unless
    the line was intact."""

    def __init__(self, reason: str, seq: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seq = seq


@dataclass(frozen=True)
class Message:
    """One decoded line."""

    seq: int
    kind: str
    fields: tuple[str, ...] = ()


def encode(seq: int, kind: str, fields: tuple[object, ...] | list[object] = ()) -> bytes:
    """``$<seq>,<KIND>[,<field>...]*<CRC16 hex>\\n``."""
    parts = [str(seq), kind]
    for f in fields:
        s = str(f)
        if _FORBIDDEN.intersection(s):
            raise ValueError(f"forbidden character in field {s!r}")
        parts.append(s)
    payload = ",".join(parts).encode("ascii")
    line = b"$" + payload + b"*" + f"{crc16(payload):04X}".encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    return line


def decode(line: bytes) -> Message:
    """Parse one line; raises :class:`ProtocolError` for anything not well-formed and intact."""
    if len(line) > MAX_LINE:
        raise ProtocolError(NAK_LONG)
    line = line.rstrip(b"\r\n")
    if len(line) < 8 or line[0:1] != b"$" or line[-5:-4] != b"*":
        raise ProtocolError(NAK_FORMAT)
    payload = line[1:-5]
    if any(b < 32 or b > 126 or b in (36, 42) for b in payload):
        raise ProtocolError(NAK_FORMAT)
    if f"{crc16(payload):04X}" != line[-4:].decode("latin-1"):  # upper-case hex only
        raise ProtocolError(NAK_CRC)
    parts = payload.decode("ascii").split(",")
    if len(parts) < 2 or not parts[1] or not parts[0].isdigit() or len(parts[0]) > 10:
        raise ProtocolError(NAK_FORMAT)
    seq = int(parts[0])
    if seq > SEQ_MAX:
        raise ProtocolError(NAK_FORMAT)
    return Message(seq, parts[1], tuple(parts[2:]))


def next_seq(seq: int) -> int:
    """1..SEQ_MAX, wrapping; 0 is reserved for "unknown"."""
    return 1 if seq >= SEQ_MAX else seq + 1


class LineAssembler:
    """Bytes in, candidate lines (bytes starting with ``$``) or garbage reasons (str) out.

    Same rules as the firmware's: resync on ``$``, overlong lines dropped to their newline.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._junk = False
        self._overflow = False

    def feed(self, data: bytes) -> list[bytes | str]:
        out: list[bytes | str] = []
        for b in data:
            if b == 36:
                if self._buf or self._junk:
                    out.append(NAK_FORMAT)
                self._buf = bytearray(b"$")
                self._junk = self._overflow = False
            elif b == 10:
                if self._overflow:
                    out.append(NAK_LONG)
                elif self._buf:
                    out.append(bytes(self._buf))
                elif self._junk:
                    out.append(NAK_FORMAT)
                self._buf = bytearray()
                self._junk = self._overflow = False
            elif self._overflow:
                continue
            elif self._buf:
                self._buf.append(b)
                if len(self._buf) > MAX_LINE:
                    self._buf = bytearray()
                    self._overflow = True
            elif b not in (13, 32, 9, 0):
                self._junk = True
        return out
