"""The emulator's Cloud PKI collections through the real client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconcile.ca.cloudpki import CAS_PATH, LEAVES_PATH
from reconcile.emulator import GraphEmulator
from reconcile.emulator.cloudpki import CloudPki
from reconcile.errors import GraphError, UpstreamError
from reconcile.graph.session import open_graph
from tests.cloudpki import CA_ID, serve, settings_for


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[GraphEmulator]:
    with serve(monkeypatch) as e:
        yield e


def test_the_emulator_serves_one_cas_leaves_and_404s_an_unknown_ca(emu: GraphEmulator) -> None:
    with open_graph(settings_for(emu).graph_config()) as graph:
        pages = list(
            graph.client.pages(f"{CAS_PATH}/{CA_ID}/cloudCertificationAuthorityLeafCertificate")
        )
        assert sum(len(p) for p in pages) == 9
        with pytest.raises(UpstreamError, match="404"):
            graph.client.get(f"{CAS_PATH}/nope/cloudCertificationAuthorityLeafCertificate")


def test_an_unknown_select_property_is_a_400_as_in_graph(emu: GraphEmulator) -> None:
    with (
        open_graph(settings_for(emu).graph_config()) as graph,
        pytest.raises(GraphError, match="400"),
    ):
        graph.client.get(LEAVES_PATH, {"$select": "id,noSuchProperty"})


def test_forbidden_answers_403_naming_the_scopes(emu: GraphEmulator) -> None:
    emu.cloud_pki = CloudPki(forbidden=("DeviceManagementCloudCA.Read.All",))
    with open_graph(settings_for(emu).graph_config()) as graph:
        for path in (CAS_PATH, LEAVES_PATH):
            with pytest.raises(GraphError) as caught:
                graph.client.get(path)
            assert caught.value.status == 403
            assert "must have one of the following scopes: DeviceManagementCloudCA" in str(
                caught.value
            )
    assert [r.status for r in emu.requests_for("cloud_pki_cas")] == [403]
