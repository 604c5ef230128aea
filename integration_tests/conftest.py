import datetime

import pytest

from integration_tests.fake_allo_api import Dataset, FakeAlloApi


def recent_dataset(seed):
    """The `small` dataset (120 days of activity) ending at today's UTC midnight. The daily analytics streams
    read one POST per day from the start date (the dataset's start) through today: with the fake's fixed
    default clock that span, and a full sync's time, would grow with the calendar up to 366 days per stream;
    ending the data today keeps it at the dataset's 121 days."""
    today = datetime.datetime.now(datetime.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return Dataset(seed=seed, scale="small", now=today)


@pytest.fixture(scope="session")
def shared_api():
    """One read-only fake Allo API for tests that do not change its data."""
    with FakeAlloApi(dataset=recent_dataset(42)) as api:
        yield api


@pytest.fixture
def fresh_api():
    """A fake Allo API of the test's own, for tests that add activity, faults or quotas."""
    with FakeAlloApi(dataset=recent_dataset(7)) as api:
        yield api


def config_for(api, key="full", **overrides):
    return {"api_key": api.keys[key], "api_url": api.url, "start_date": api.dataset.start.strftime("%Y-%m-%dT%H:%M:%SZ"), **overrides}


@pytest.fixture
def pyairbyte(tmp_path, monkeypatch):
    """PyAirbyte, imported with its state and logs under the test's tmp dir (the DuckDB and PostgreSQL tests)."""
    # Offline (the connector is local), no telemetry, every file under the test's tmp dir.
    monkeypatch.setenv("AIRBYTE_OFFLINE_MODE", "1")
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    monkeypatch.setenv("AIRBYTE_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("AIRBYTE_LOGGING_ROOT", str(tmp_path / "logs"))
    monkeypatch.setenv("AIRBYTE_INSTALL_DIR", str(tmp_path / "install"))
    import airbyte

    return airbyte
