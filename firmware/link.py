# Reliable sequenced messages over a byte stream: ACK/NAK, retransmit, duplicate suppression.
# One instance per end of the wire; the controller uses this one (the Pi mirrors it in
# qc_station/hardware/link.py). MicroPython subset only.

from protocol import (
    NAK_FORMAT,
    LineAssembler,
    ProtocolError,
    decode,
    encode,
    next_seq,
)


class Link:
    """Sends sequenced messages until ACKed and hands each new received message to a handler
    exactly once.

    - ``write(bytes)`` puts bytes on the wire; ``clock`` has ``ms()`` and ``diff(a, b)``.
    - ``send(kind, fields)`` queues a message, retransmitted every ``retry_ms`` until ACKed, at
      most ``max_tries`` times (then dropped and counted: the peer is gone and the watchdog or
      a new HELLO takes over).
    - ``feed(data, handler)``: ``handler(seq, kind, fields)`` is called once per new message
      and returns None (ACK) or a NAK reason; it may raise ProtocolError. Garbage is NAKed
      and counted, never handed over. A duplicate (seq seen recently) is re-ACKed, not handed
      over. HELLO is always handed over (a restarted peer reuses low sequence numbers).
    """

    def __init__(self, write, clock, retry_ms=200, max_tries=15, window=32, max_pending=32):
        self._write = write
        self._clock = clock
        self.retry_ms = retry_ms
        self.max_tries = max_tries
        self._window = window
        self._max_pending = max_pending
        self._asm = LineAssembler()
        self._tx_seq = 0
        self._pending = []  # [seq, line, last_sent_ms, tries]
        self._recent = []  # received sequence numbers, oldest first
        self.bad_lines = 0  # garbage / corrupt / truncated lines received (NAKed)
        self.dup_lines = 0  # duplicates received (re-ACKed, not acted upon)
        self.retransmits = 0
        self.dropped = 0  # messages given up after max_tries
        self.naks_received = 0

    def send(self, kind, fields=()):
        self._tx_seq = next_seq(self._tx_seq)
        line = encode(self._tx_seq, kind, fields)
        if len(self._pending) >= self._max_pending:
            self._pending.pop(0)
            self.dropped += 1
        self._pending.append([self._tx_seq, line, self._clock.ms(), 1])
        self._write(line)
        return self._tx_seq

    def pending(self):
        return len(self._pending)

    def reset_rx(self):
        """Forget received sequence numbers (the peer started a new session)."""
        self._recent = []

    def feed(self, data, handler):
        for item in self._asm.feed(data):
            if isinstance(item, str):
                self._garbage(0, item)
                continue
            try:
                seq, kind, fields = decode(item)
            except ProtocolError as exc:
                self._garbage(exc.seq, exc.reason)
                continue
            if kind == "ACK":
                self._acked(seq)
            elif kind == "NAK":
                self._naked(seq)
            elif seq == 0:
                self._garbage(0, NAK_FORMAT)
            elif kind != "HELLO" and seq in self._recent:
                self.dup_lines += 1
                self._write(encode(seq, "ACK"))
            else:
                try:
                    reason = handler(seq, kind, fields)
                except ProtocolError as exc:
                    reason = exc.reason
                if reason is None:
                    self._remember(seq)
                    self._write(encode(seq, "ACK"))
                else:
                    self._write(encode(seq, "NAK", (reason,)))

    def poll(self):
        """Retransmit what has waited ``retry_ms`` for its ACK."""
        now = self._clock.ms()
        keep = []
        for entry in self._pending:
            if self._clock.diff(now, entry[2]) >= self.retry_ms:
                if entry[3] >= self.max_tries:
                    self.dropped += 1
                    continue
                entry[2] = now
                entry[3] += 1
                self.retransmits += 1
                self._write(entry[1])
            keep.append(entry)
        self._pending = keep

    def _garbage(self, seq, reason):
        self.bad_lines += 1
        self._write(encode(seq, "NAK", (reason,)))

    def _remember(self, seq):
        self._recent.append(seq)
        if len(self._recent) > self._window:
            self._recent.pop(0)

    def _acked(self, seq):
        for i in range(len(self._pending)):
            if self._pending[i][0] == seq:
                self._pending.pop(i)
                return

    def _naked(self, seq):
        self.naks_received += 1
        if seq == 0:
            # The peer got a line it could not read: resend everything outstanding now.
            now = self._clock.ms()
            for entry in self._pending:
                entry[2] = now
                self.retransmits += 1
                self._write(entry[1])
        else:
            # The peer read it and refused it: resending would not help.
            self._acked(seq)
