"""Pure image functions: frame -> tray-plane measurements in mm (see ``pipeline``)."""
