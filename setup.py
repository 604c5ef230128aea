"""Packaging for source-allo: the single place that declares dependencies."""

from pathlib import Path

from setuptools import find_packages, setup

VERSION = "0.1.0"

MAIN_REQUIREMENTS = [
    # 7.39.1 is the CDK this connector is built and tested on; 7.x keeps the
    # declarative component schema the manifest relies on.
    "airbyte-cdk>=7.39.1,<8",
]

TEST_REQUIREMENTS = [
    "pytest>=8",
    "requests-mock>=1.12",
    # PyAirbyte: the real client used by the end-to-end test and the demo.
    "airbyte==0.71.3",
]

setup(
    name="airbyte-source-allo",
    version=VERSION,
    description="Airbyte source connector for Allo (withallo.com): calls, SMS, transcripts, AI summaries, contacts, team.",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8")
    if Path(__file__).with_name("README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["source_allo", "source_allo.*"]),
    package_data={"source_allo": ["manifest.yaml", "schemas/*.json"]},
    install_requires=MAIN_REQUIREMENTS,
    extras_require={"tests": TEST_REQUIREMENTS},
    entry_points={"console_scripts": ["source-allo=source_allo.run:main"]},
)
