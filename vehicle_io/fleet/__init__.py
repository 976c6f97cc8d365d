"""Fleet logs: many vans' CAN logs decoded to a Parquet dataset on Dask, and summarised.

::

    from vehicle_io.fleet import decode_fleet, summarize
    report = decode_fleet(["fleet/"], "out/", workers=2)    # van=.../message=.../part-*.parquet
    per_van = summarize("out/")

See docs/fleet.md for the dataset layout, its metadata and the robustness guarantees.
Importing this package imports neither Dask, pyarrow nor numba; they load when a job runs.
"""

from __future__ import annotations

from typing import Any

from vehicle_io.fleet.plan import FleetError, check_loopback

__all__ = ["FleetError", "check_loopback", "decode_fleet", "message_dataset", "summarize"]


def decode_fleet(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """See :func:`vehicle_io.fleet.job.decode_fleet`."""
    from vehicle_io.fleet.job import decode_fleet as run

    return run(*args, **kwargs)


def summarize(*args: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """See :func:`vehicle_io.fleet.summary.summarize`."""
    from vehicle_io.fleet.summary import summarize as run

    return run(*args, **kwargs)


def message_dataset(*args: Any, **kwargs: Any) -> Any:
    """See :func:`vehicle_io.fleet.summary.message_dataset`."""
    from vehicle_io.fleet.summary import message_dataset as run

    return run(*args, **kwargs)
