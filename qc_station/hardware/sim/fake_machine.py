"""A fake MicroPython ``machine`` module: Pin (with IRQs), PWM, UART, WDT.

Just enough of the rp2 API for ``firmware/main.py``. Each :class:`FakeMachine` is one board:
its pins are independent of any other board's, and the simulation drives the inputs with
:meth:`FakeMachine.drive` (which fires the IRQ handlers the firmware registered).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class _PinBase:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8
    _board: FakeMachine

    def __init__(self, pin_id: int, mode: int = -1, pull: int = -1, *, value: int | None = None) -> None:
        self.id = pin_id
        self.mode = mode
        self.pull = pull
        board = self._board
        if pin_id in board.claimed and mode != -1:
            raise ValueError(f"GPIO{pin_id} configured twice")
        if mode != -1:
            board.claimed.add(pin_id)
        if mode == self.IN and pin_id not in board.levels:
            board.levels[pin_id] = 1 if pull == self.PULL_UP else 0
        elif value is not None or pin_id not in board.levels:
            board.levels[pin_id] = int(value or 0)

    def value(self, v: int | None = None) -> int | None:
        board = self._board
        if v is None:
            return board.levels.get(self.id, 0)
        if self.mode == self.IN:
            raise ValueError(f"GPIO{self.id} is an input")
        v = 1 if v else 0
        if board.levels.get(self.id) != v:
            board.levels[self.id] = v
            board.on_output(self.id, v)
        return None

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)

    def irq(
        self, handler: Callable[[Any], None] | None = None, trigger: int = 12, hard: bool = False
    ) -> None:
        self._board.irqs[self.id] = (handler, trigger, self)


class _PWMBase:
    _board: FakeMachine

    def __init__(self, pin: _PinBase) -> None:
        self.pin = pin
        self._freq = 0
        self._board.pwms[pin.id] = self
        self.duty = 0

    def freq(self, f: int | None = None) -> int | None:
        if f is None:
            return self._freq
        self._freq = f
        return None

    def duty_u16(self, d: int | None = None) -> int | None:
        if d is None:
            return self.duty
        if not 0 <= d <= 65535:
            raise ValueError("duty out of range")
        self.duty = d
        return None


class _UARTBase:
    _board: FakeMachine

    def __init__(self, uart_id: int, baudrate: int = 115200, **kwargs: Any) -> None:
        self.id = uart_id
        self.baudrate = baudrate
        self.rx = bytearray()  # host -> firmware
        self.tx = bytearray()  # firmware -> host
        self._board.uarts[uart_id] = self

    def any(self) -> int:
        return len(self.rx)

    def read(self, n: int = -1) -> bytes | None:
        if not self.rx:
            return None
        n = len(self.rx) if n < 0 else n
        data, self.rx = bytes(self.rx[:n]), self.rx[n:]
        return data

    def write(self, data: bytes) -> int:
        self.tx += data
        return len(data)


class _WDTBase:
    _board: FakeMachine

    def __init__(self, id: int = 0, timeout: int = 5000) -> None:
        self.timeout = timeout
        self.feeds = 0
        self._board.wdt = self

    def feed(self) -> None:
        self.feeds += 1


class FakeMachine:
    """One simulated board, usable in place of the ``machine`` module."""

    def __init__(self) -> None:
        self.levels: dict[int, int] = {}
        self.claimed: set[int] = set()
        self.irqs: dict[int, tuple[Callable[[Any], None] | None, int, _PinBase]] = {}
        self.pwms: dict[int, _PWMBase] = {}
        self.uarts: dict[int, _UARTBase] = {}
        self.wdt: _WDTBase | None = None
        self.output_listeners: list[Callable[[int, int], None]] = []
        self.Pin = type("Pin", (_PinBase,), {"_board": self})
        self.PWM = type("PWM", (_PWMBase,), {"_board": self})
        self.UART = type("UART", (_UARTBase,), {"_board": self})
        self.WDT = type("WDT", (_WDTBase,), {"_board": self})

    def unique_id(self) -> bytes:
        return b"\xe6\x61\x38\x52\x83\x29\x2a\x2f"

    def drive(self, pin_id: int, level: int) -> None:
        """Set an input pin from outside (a sensor) and fire its IRQ on a matching edge."""
        level = 1 if level else 0
        old = self.levels.get(pin_id, 0)
        if old == level:
            return
        self.levels[pin_id] = level
        entry = self.irqs.get(pin_id)
        if entry and entry[0] is not None:
            handler, trigger, pin = entry
            if (level and trigger & _PinBase.IRQ_RISING) or (not level and trigger & _PinBase.IRQ_FALLING):
                handler(pin)

    def on_output(self, pin_id: int, level: int) -> None:
        for listener in self.output_listeners:
            listener(pin_id, level)

    def level(self, pin_id: int) -> int:
        return self.levels.get(pin_id, 0)
