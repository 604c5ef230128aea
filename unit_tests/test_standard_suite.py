"""The CDK's own standard test suite, run in-process from acceptance-test-config.yml against the fake
Allo API (served here on the port the configs name)."""

import pytest

from airbyte_cdk.test.standard_tests import SourceTestSuiteBase
from airbyte_cdk.test.models.scenario import ConnectorTestScenario

from integration_tests.fake_allo_api import Dataset, FakeAlloApi
from source_allo import SourceAllo

STANDARD_PORT = 48765  # the port in integration_tests/{sample,standard,invalid}_config.json


@pytest.fixture(scope="module", autouse=True)
def fake_allo_api():
    with FakeAlloApi(dataset=Dataset(seed=42, scale="small"), port=STANDARD_PORT) as api:
        yield api


class TestAlloStandardSuite(SourceTestSuiteBase):
    connector = SourceAllo

    @classmethod
    def create_connector(cls, scenario: ConnectorTestScenario | None) -> SourceAllo:
        # The concurrent declarative source binds its config at construction.
        config = scenario.get_config_dict(connector_root=cls.get_connector_root_dir(), empty_if_missing=True) if scenario else None
        return SourceAllo(config=config or None)
