"""DescribeCluster/ListClusters through a real boto3 client configured by env vars only."""

from __future__ import annotations

import base64
from typing import Any

import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from kubesim import Simulator


def test_describe_cluster_returns_endpoint_and_the_ca_that_serves_it(
    sim: Simulator, eks: Any
) -> None:
    cluster = eks.describe_cluster(name=sim.cluster)["cluster"]

    assert cluster["endpoint"] == sim.url
    assert base64.b64decode(cluster["certificateAuthority"]["data"]) == sim.ca_pem_path.read_bytes()
    assert cluster["arn"] == f"arn:aws:eks:us-east-1:123456789012:cluster/{sim.cluster}"
    assert cluster["status"] == "ACTIVE"
    assert cluster["version"] == "1.31"
    assert cluster["accessConfig"] == {"authenticationMode": "API_AND_CONFIG_MAP"}
    assert cluster["kubernetesNetworkConfig"]["serviceIpv4Cidr"] == "10.100.0.0/16"
    assert cluster["platformVersion"].startswith("eks.")
    assert cluster["roleArn"].startswith("arn:aws:iam::123456789012:role/")


def test_describe_cluster_of_an_unknown_name_is_resource_not_found(eks: Any) -> None:
    with pytest.raises(ClientError) as caught:
        eks.describe_cluster(name="other-cluster")

    error = caught.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException"
    assert error["Message"] == "No cluster found for name: other-cluster."
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_list_clusters_names_the_simulated_cluster(sim: Simulator, eks: Any) -> None:
    assert eks.list_clusters()["clusters"] == [sim.cluster]


def test_unsigned_requests_get_the_missing_authentication_token_error(
    sim: Simulator, make_eks: Any
) -> None:
    unsigned = make_eks(config=Config(signature_version=botocore.UNSIGNED))

    with pytest.raises(ClientError) as caught:
        unsigned.describe_cluster(name=sim.cluster)

    assert caught.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_wrong_secret_key_fails_signature_verification(sim: Simulator, make_eks: Any) -> None:
    wrong = make_eks(
        aws_access_key_id=sim.env["AWS_ACCESS_KEY_ID"], aws_secret_access_key="not-the-secret"
    )

    with pytest.raises(ClientError) as caught:
        wrong.describe_cluster(name=sim.cluster)

    assert caught.value.response["Error"]["Code"] == "InvalidSignatureException"


def test_an_unknown_access_key_is_an_unrecognized_client(sim: Simulator, make_eks: Any) -> None:
    stranger = make_eks(aws_access_key_id="AKIAUNKNOWNEXAMPLE", aws_secret_access_key="whatever")

    with pytest.raises(ClientError) as caught:
        stranger.describe_cluster(name=sim.cluster)

    assert caught.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_env_names_every_variable_a_worker_needs(sim: Simulator) -> None:
    assert set(sim.env) >= {
        "EKS_CLUSTER_NAME",
        "EKS_REGION",
        "AWS_ENDPOINT_URL_EKS",
        "AWS_CA_BUNDLE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    }
    assert sim.env["AWS_ENDPOINT_URL_EKS"] == f"https://127.0.0.1:{sim.port}"
    assert sim.env["AWS_ACCESS_KEY_ID"] == "AKIAKUBESIMEXAMPLE"
