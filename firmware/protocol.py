# Conveyor link protocol v1: framing, CRC and the line assembler (see protocol.md).
#
# Runs unchanged on MicroPython (RP2040) and CPython (tests, and mirrored by
# qc_station/hardware/codec.py on the Pi). Keep to the MicroPython subset: no f-strings,
# no dataclasses, no typing, no bytes.hex().

PROTOCOL_VERSION = 1
MAX_LINE = 250  # bytes from "$" to "\n" inclusive; longer lines are garbage
SEQ_MAX = 65535  # sequenced messages use 1..SEQ_MAX, then wrap to 1; 0 means "unknown"

# Why a line was refused (the NAK reason field).
NAK_CRC = "CRC"  # checksum mismatch: line corrupted on the wire
NAK_FORMAT = "FORMAT"  # no '$', no '*', bad seq, bad characters
NAK_LONG = "LONG"  # longer than MAX_LINE
NAK_TYPE = "TYPE"  # intact but unknown message type
NAK_FIELD = "FIELD"  # intact, known type, wrong fields
NAK_VERSION = "VERSION"  # HELLO with a protocol version we do not speak
NAK_STATE = "STATE"  # intact and valid but refused now (e.g. BELT,RUN while e-stop latched)

_HEX = "0123456789ABCDEF"
_FORBIDDEN = "$*,\r\n"


def _crc_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        table.append(crc)
    return table


# Table-driven: one lookup per byte instead of eight shifts (~8x faster on the RP2040).
_CRC_TABLE = _crc_table()


def crc16(data):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xor-out) of bytes."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ b) & 0xFF]
    return crc


def _hex4(value):
    return _HEX[(value >> 12) & 15] + _HEX[(value >> 8) & 15] + _HEX[(value >> 4) & 15] + _HEX[value & 15]


class ProtocolError(Exception):
    """A received line that must not be acted upon. ``reason`` is the NAK reason, ``seq`` the
    sequence number when the line was intact (CRC good), else 0."""

    def __init__(self, reason, seq=0):
        Exception.__init__(self, reason)
        self.reason = reason
        self.seq = seq


def encode(seq, kind, fields=()):
    """One line as bytes: ``$<seq>,<KIND>[,<field>...]*<CRC16 hex>\\n``."""
    parts = [str(seq), kind]
    for f in fields:
        s = str(f)
        for ch in s:
            if ch in _FORBIDDEN:
                raise ValueError("forbidden character in field")
        parts.append(s)
    payload = ",".join(parts).encode()
    line = b"$" + payload + b"*" + _hex4(crc16(payload)).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise ValueError("line too long")
    return line


def decode(line):
    """Parse one line (bytes, with or without the trailing newline).

    Returns ``(seq, kind, fields)`` with ``fields`` a list of str. Raises ProtocolError for
    anything that is not a well-formed, checksum-valid line; such a line is never acted upon.
    """
    if len(line) > MAX_LINE:
        raise ProtocolError(NAK_LONG)
    while line and line[-1] in (10, 13):  # '\n', '\r'
        line = line[:-1]
    if len(line) < 8 or line[0] != 36:  # '$'
        raise ProtocolError(NAK_FORMAT)
    star = len(line) - 5
    if line[star] != 42:  # '*'
        raise ProtocolError(NAK_FORMAT)
    payload = line[1:star]
    for b in payload:
        if b < 32 or b > 126 or b == 36 or b == 42:
            raise ProtocolError(NAK_FORMAT)
    crc_text = "".join([chr(b) for b in line[star + 1 :]])  # upper-case hex only
    if _hex4(crc16(payload)) != crc_text:
        raise ProtocolError(NAK_CRC)
    parts = payload.decode().split(",")
    if len(parts) < 2 or not parts[1]:
        raise ProtocolError(NAK_FORMAT)
    seq = _parse_uint(parts[0], SEQ_MAX)
    if seq is None:
        raise ProtocolError(NAK_FORMAT)
    return seq, parts[1], parts[2:]


def _parse_uint(text, maximum):
    if not text or len(text) > 10:
        return None
    for ch in text:
        if ch < "0" or ch > "9":
            return None
    value = int(text)
    if value > maximum:
        return None
    return value


def parse_uint(text, maximum=0x7FFFFFFF):
    """Decimal unsigned int field, or raise ProtocolError(FIELD)."""
    value = _parse_uint(text, maximum)
    if value is None:
        raise ProtocolError(NAK_FIELD)
    return value


def parse_int(text):
    """Decimal signed int field (encoder counts can run backwards), or ProtocolError(FIELD)."""
    if text and text[0] == "-":
        return -parse_uint(text[1:])
    return parse_uint(text)


def next_seq(seq):
    """The sequence number after ``seq`` (1..SEQ_MAX, wrapping; 0 is never used)."""
    seq += 1
    if seq > SEQ_MAX:
        seq = 1
    return seq


class LineAssembler:
    """Bytes in, complete candidate lines out.

    Resynchronises on '$': bytes before a '$' that are not whitespace are one garbage event.
    A line longer than MAX_LINE is dropped up to its newline and reported as one garbage event.
    ``feed`` returns a list of items: bytes (a candidate line starting with '$') or the str
    NAK reason for garbage.
    """

    def __init__(self):
        self._buf = bytearray()
        self._junk = False  # non-whitespace bytes seen outside a line
        self._overflow = False

    def feed(self, data):
        out = []
        for b in data:
            if b == 36:  # '$' always starts a new line; a half line before it was lost
                if self._buf or self._junk:
                    out.append(NAK_FORMAT)
                self._buf = bytearray(b"$")
                self._junk = False
                self._overflow = False
            elif b == 10:  # '\n'
                if self._overflow:
                    out.append(NAK_LONG)
                elif self._buf:
                    out.append(bytes(self._buf))
                elif self._junk:
                    out.append(NAK_FORMAT)
                self._buf = bytearray()
                self._junk = False
                self._overflow = False
            elif self._overflow:
                pass
            elif self._buf:
                self._buf.append(b)
                if len(self._buf) > MAX_LINE:
                    self._buf = bytearray()
                    self._overflow = True
            elif b not in (13, 32, 9, 0):
                self._junk = True
        return out
