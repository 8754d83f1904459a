"""Conveyor hardware: the serial link to the controller in ``firmware/`` and its simulation.

* :class:`qc_station.hardware.link.ConveyorLink` - pyserial driver (reconnects on unplug).
* :mod:`qc_station.hardware.codec` - protocol v1 line codec (mirror of ``firmware/protocol.py``).
* :mod:`qc_station.hardware.sim` - fake ``machine`` module, simulated belt, the firmware run
  in-process on a pseudo-terminal, and the full conveyor loop.
"""
