"""A cloud from ``nubis up`` with EC2 credentials (``openstack ec2 credentials create``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.functional.proxy.cloud import Cloud, start_cloud


@dataclass(frozen=True)
class Keys:
    """One EC2 credential."""

    access: str
    secret: str
    project_id: str


@dataclass(frozen=True)
class S3Cloud:
    """The running cloud and a credential per project."""

    cloud: Cloud
    demo: Keys
    admin: Keys

    @property
    def endpoint(self) -> str:
        return self.cloud.proxy_url

    def client(self, keys: Keys | None = None, **config: Any) -> Any:
        """Return a boto3 S3 client (default checksum and streaming behaviour)."""
        from botocore.config import Config

        k = keys or self.demo
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=k.access, aws_secret_access_key=k.secret,
                            config=Config(retries={"max_attempts": 1}, **config))

    def aws(self, *args: str, keys: Keys | None = None, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        """Run the ``aws`` CLI against the proxy."""
        k = keys or self.demo
        env = {key: v for key, v in os.environ.items() if not key.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=k.access, AWS_SECRET_ACCESS_KEY=k.secret,
                   AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        aws = Path(sys.executable).with_name("aws")
        proc = subprocess.run([str(aws), "--endpoint-url", self.endpoint, *args],
                              capture_output=True, text=True, env=env, timeout=300,
                              check=False)
        if check:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc

    def segments(self, bucket: str) -> list[str]:
        """List ``<bucket>+segments`` through the Swift API (``openstack object list``)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_CLIENT_CONFIG_FILE"] = str(self.cloud.state / "clouds.yaml")
        osc = Path(sys.executable).with_name("openstack")
        proc = subprocess.run([str(osc), "--os-cloud", "nubis-demo", "object", "list",
                               f"{bucket}+segments", "-f", "json"], capture_output=True,
                              text=True, env=env, timeout=300, check=True)
        return sorted(o["Name"] for o in json.loads(proc.stdout))


    def swift(self) -> Any:
        """Return a python-swiftclient connection of the demo project (Keystone v3)."""
        import swiftclient
        import yaml

        auth = yaml.safe_load((self.cloud.state / "clouds.yaml").read_text())[
            "clouds"]["nubis-demo"]["auth"]
        return swiftclient.Connection(
            authurl=auth["auth_url"], user=auth["username"], key=auth["password"],
            auth_version="3", retries=0,
            os_options={"project_name": auth["project_name"],
                        "user_domain_name": "Default", "project_domain_name": "Default"})


def unsigned_client(endpoint: str) -> Any:
    """Return a boto3 S3 client that signs nothing (an anonymous caller)."""
    from botocore import UNSIGNED
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))


def ec2_credentials(cloud: Cloud, name: str) -> Keys:
    """Create EC2 credentials with the ``openstack`` CLI for cloud ``name``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(cloud.state / "clouds.yaml")
    osc = Path(sys.executable).with_name("openstack")
    proc = subprocess.run([str(osc), "--os-cloud", name, "ec2", "credentials", "create",
                           "-f", "json"], capture_output=True, text=True, env=env,
                          timeout=120, check=True)
    doc = json.loads(proc.stdout)
    return Keys(doc["access"], doc["secret"], doc["project_id"])


@pytest.fixture(scope="session")
def s3cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Cloud]:
    cloud = start_cloud(tmp_path_factory.mktemp("s3cloud"))
    try:
        yield S3Cloud(cloud, ec2_credentials(cloud, "nubis-demo"),
                      ec2_credentials(cloud, "nubis-admin"))
    finally:
        cloud.down()
