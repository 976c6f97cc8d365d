"""The simulated Z10 van (plant model): parameters, state layout, numba kernels.

Importing this package does not import numba; ``from hil.plant.model import Van`` does.
"""

from hil.plant.errors import PlantError, PlantInputError, PlantParamError
from hil.plant.params import VanParams

__all__ = ["PlantError", "PlantInputError", "PlantParamError", "VanParams"]
