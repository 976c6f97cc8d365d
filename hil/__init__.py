"""hil: what pretends to be a Z10 van on the bench.

A timed virtual CAN bus (python-can interface ``hilbus``), the plant model, simulated ECUs,
fault injection and scenarios. hil may import vehicle_io; vehicle_io never imports hil.
"""
