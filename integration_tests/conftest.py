import pytest

from integration_tests.fake_allo_api import Dataset, FakeAlloApi


@pytest.fixture(scope="session")
def shared_api():
    """One read-only fake Allo API for tests that do not change its data."""
    with FakeAlloApi(dataset=Dataset(seed=42, scale="small")) as api:
        yield api


@pytest.fixture
def fresh_api():
    """A fake Allo API of the test's own, for tests that add activity, faults or quotas."""
    with FakeAlloApi(dataset=Dataset(seed=7, scale="small")) as api:
        yield api


def config_for(api, key="full", **overrides):
    return {"api_key": api.keys[key], "api_url": api.url, "start_date": api.dataset.start.strftime("%Y-%m-%dT%H:%M:%SZ"), **overrides}
