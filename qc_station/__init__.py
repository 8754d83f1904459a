"""Mask QC station: calibrated computer-vision quality control for fabric face masks.

The package follows the data's path::

    capture -> calibration (rectify to the tray plane, mm) -> vision (segment, measure,
    classify) -> decide -> store -> api / web / certificates

See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
