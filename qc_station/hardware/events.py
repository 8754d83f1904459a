"""The trigger event the conveyor driver emits.

One definition for the whole station: :class:`qc_station.capture.triggers.TriggerEvent`
(``seq``, ``timestamp``, ``origin``, ``belt_position``), re-exported here so hardware code and
its users can import it from either place. The driver fills ``origin="conveyor"``,
``timestamp=time.time()`` at reception and ``belt_position`` = encoder counts at the
photo-eye edge; ``seq`` is station-side unique even across controller reboots.
"""

from __future__ import annotations

from qc_station.capture.triggers import TriggerEvent

__all__ = ["TriggerEvent"]
