"""A fake Allo API server (api.withallo.com) for development, tests and benchmarks.

    from integration_tests.fake_allo_api import FakeAlloApi, Dataset, Knobs

    with FakeAlloApi(dataset=Dataset(seed=42, scale="small"), knobs=Knobs()) as api:
        ...  # point the connector at api.url with api.keys["full"]

Standard library only. See ``server.py`` for the request pipeline,
``endpoints.py`` for the endpoints, ``dataset.py`` for the data and truth,
``faults.py`` for the knobs.
"""

from .dataset import Dataset
from .faults import Knobs
from .server import DEFAULT_KEYS, FakeAlloApi

__all__ = ["FakeAlloApi", "Dataset", "Knobs", "DEFAULT_KEYS"]
