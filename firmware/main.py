# Conveyor controller entry point on the Raspberry Pi Pico: wires the real `machine` pins to
# the controller logic and runs the loop. Importing this file touches no hardware; `run()`
# does (called at the bottom when the Pico boots it as main.py). The tests call `build()` and
# `step()` with a fake `machine` module, so this wiring is exercised too.

import sys

import config
from controller import Controller, Io
from encoder import QuadratureEncoder


class TicksClock:
    """Millisecond clock over MicroPython's wrap-safe ticks (time.ticks_ms/diff/add)."""

    def __init__(self, time_module):
        self._t = time_module

    def ms(self):
        return self._t.ticks_ms()

    def diff(self, a, b):
        return self._t.ticks_diff(a, b)

    def add(self, a, b):
        return self._t.ticks_add(a, b)


class UsbTransport:
    """USB CDC (the Pico's default console), read without blocking via select.poll."""

    def __init__(self):
        import select

        self._in = sys.stdin.buffer
        self._out = sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(sys.stdin, select.POLLIN)

    def read(self):
        data = b""
        while len(data) < 128 and self._poll.poll(0):
            data += self._in.read(1)
        return data

    def write(self, data):
        self._out.write(data)


class UartTransport:
    """A hardware UART (machine.UART), e.g. through an isolated USB-serial adapter."""

    def __init__(self, uart):
        self._uart = uart

    def read(self):
        n = self._uart.any()
        if n:
            return self._uart.read(n)
        return b""

    def write(self, data):
        self._uart.write(data)


def build(machine, transport, clock, cfg=None, boot_id=1):
    """Create the pins and the controller. ``machine`` is the real module on the Pico, a fake
    one in the tests."""
    pin = machine.Pin
    if cfg is None:
        cfg = config.Config()

    def output(n):
        return pin(n, pin.OUT, value=0)

    pwm = machine.PWM(pin(config.PIN_BELT_PWM))
    pwm.freq(cfg.pwm_freq)
    pwm.duty_u16(0)
    encoder = QuadratureEncoder(
        pin(config.PIN_ENC_A, pin.IN, pin.PULL_UP),
        pin(config.PIN_ENC_B, pin.IN, pin.PULL_UP),
        pin.IRQ_RISING | pin.IRQ_FALLING,
    )
    io = Io(
        eye=pin(config.PIN_PHOTO_EYE, pin.IN, pin.PULL_DOWN),
        estop=pin(config.PIN_ESTOP, pin.IN, pin.PULL_UP),
        encoder=encoder,
        belt_enable=output(config.PIN_BELT_ENABLE),
        belt_pwm=pwm,
        reject=output(config.PIN_REJECT),
        green=output(config.PIN_LIGHT_GREEN),
        amber=output(config.PIN_LIGHT_AMBER),
        red=output(config.PIN_LIGHT_RED),
        buzzer=output(config.PIN_BUZZER),
    )
    return Controller(io, clock, transport.write, cfg, boot_id, config.FIRMWARE_VERSION)


def step(controller, transport):
    """One pass of the main loop: take what arrived, then run the controller logic."""
    data = transport.read()
    if data:
        controller.feed(data)
    controller.poll()


def _boot_id():
    try:
        import random

        return random.getrandbits(15) + 1
    except Exception:
        return 1


def run():
    import time

    import machine

    service = machine.Pin(config.PIN_SERVICE, machine.Pin.IN, machine.Pin.PULL_UP)
    if service.value() == 0:
        print("conveyor: service jumper set, not starting (REPL stays free for mpremote)")
        return
    if config.LINK == "uart":
        uart = machine.UART(
            0,
            config.UART_BAUD,
            tx=machine.Pin(config.PIN_UART_TX),
            rx=machine.Pin(config.PIN_UART_RX),
        )
        transport = UartTransport(uart)
    else:
        import micropython

        micropython.kbd_intr(-1)  # a 0x03 byte on the link must not stop the firmware
        transport = UsbTransport()
    controller = build(machine, transport, TicksClock(time), boot_id=_boot_id())
    wdt = machine.WDT(timeout=2000)  # the firmware itself hanging resets the Pico
    while True:
        step(controller, transport)
        wdt.feed()


if __name__ == "__main__":
    run()
