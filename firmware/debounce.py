# Debounced digital input: a new level is accepted only after it has been stable for
# ``stable_ms``. Pure logic: the caller samples the pin and passes the time.


class Debouncer:
    """Level filter for a bouncing input (photo-eye, e-stop release).

    ``update(raw, now_ms, tag)`` returns True when the accepted level changes. ``edge_ms`` and
    ``edge_tag`` then hold the time and the caller's tag (e.g. encoder count) of the raw edge
    that began the stable run, so the event is stamped where it happened, not ``stable_ms``
    later.
    """

    def __init__(self, initial, stable_ms, diff):
        self.state = initial
        self.stable_ms = stable_ms
        self._diff = diff  # ticks_diff(a, b) -> a - b in ms, wrap-safe
        self._pending = False
        self.edge_ms = 0
        self.edge_tag = 0

    def update(self, raw, now_ms, tag=0):
        if raw == self.state:
            self._pending = False
            return False
        if not self._pending:
            self._pending = True
            self.edge_ms = now_ms
            self.edge_tag = tag
            return False
        if self._diff(now_ms, self.edge_ms) >= self.stable_ms:
            self.state = raw
            self._pending = False
            return True
        return False
