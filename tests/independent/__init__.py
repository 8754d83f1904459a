"""An independent scene generator used only to validate the inspection pipeline.

Deliberately different from ``qc_station.sim`` (which it never imports): a rational +
thin-prism lens (OpenCV's 12-coefficient model), its own pose parametrisation, masks built as a
displaced mesh (cloth dome and waviness) whose texture is mapped through a Newton-inverted forward
projection, outlines and loops forward-projected and filled at 4x, its own procedural prints,
trays and sensor. Truth comes from how the scene is drawn. ``python -m tests.independent.bench``.
"""
