# Pins and tunables of the conveyor controller. Edit here for your build; README.md has the
# wiring. Distances are belt distances in mm, converted to encoder counts at start-up.

FIRMWARE_VERSION = "1.0.0"

# --- Pins (Raspberry Pi Pico GPIO numbers) ---
PIN_PHOTO_EYE = 2  # beam-break receiver output (through an opto / divider to 3.3 V)
PIN_ESTOP = 3  # e-stop NC contact to GND, internal pull-up: pressed or cut wire reads 1
PIN_ENC_A = 4  # belt encoder channel A
PIN_ENC_B = 5  # belt encoder channel B
PIN_BELT_ENABLE = 6  # motor driver enable / VFD run input (through a relay or opto)
PIN_BELT_PWM = 7  # motor speed: PWM (RC-filtered to 0-10 V for a VFD if needed)
PIN_REJECT = 8  # reject actuator: solenoid valve / air-jet driver (MOSFET)
PIN_LIGHT_GREEN = 10
PIN_LIGHT_AMBER = 11
PIN_LIGHT_RED = 12
PIN_BUZZER = 13
PIN_SERVICE = 22  # jumper to GND at boot: do not start, stay in the REPL (for mpremote)
PIN_UART_TX = 0  # only when LINK = "uart"
PIN_UART_RX = 1

LINK = "usb"  # "usb" (USB CDC, the default) or "uart" (UART0 at UART_BAUD)
UART_BAUD = 115200


class Config:
    """Controller tunables; keyword arguments override the defaults (tests, sim)."""

    def __init__(self, **overrides):
        self.eye_active = 1  # photo-eye pin level when the beam is broken
        self.estop_active = 1  # e-stop pin level when pressed (NC contact + pull-up)
        self.eye_debounce_ms = 8  # beam must stay broken / clear this long
        self.estop_release_ms = 50  # e-stop must read released this long before CLEAR works
        self.mm_per_count = 0.5  # belt travel per encoder count
        self.reject_distance_mm = 1200.0  # photo-eye -> reject flap, along the belt
        self.reject_offset_mm = 45.0  # fire when the mask's middle (not its edge) is at the flap
        self.min_pitch_mm = 120.0  # a new trigger needs this much travel since the last one
        self.max_block_mm = 400.0  # beam blocked for longer than this: EYE fault, belt stops
        self.reject_pulse_ms = 120  # how long the actuator stays on
        self.watchdog_ms = 1500  # no message from the station for this long -> stop the belt
        self.pwm_freq = 20000
        self.retry_ms = 200  # link retransmit timeout
        self.max_tries = 15
        self.max_in_flight = 32  # masks between photo-eye and flap; more means a fault
        self.red_chirp_ms = 150  # buzzer chirp on a reject
        for key in overrides:
            if not hasattr(self, key):
                raise ValueError("unknown config key " + key)
            setattr(self, key, overrides[key])

    def counts(self, mm):
        return int(mm / self.mm_per_count + 0.5)
