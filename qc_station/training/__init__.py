"""Training, export and evaluation of the defect classifier (the only place torch is imported).

Needs the ``train`` extra (``pip install -e .[train]``; here ``pip install torch==2.13.0``).
The runtime that the station uses lives in :mod:`qc_station.vision.defects` and needs only
ONNX Runtime.
"""
