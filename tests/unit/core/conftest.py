from __future__ import annotations

import pytest

from stream_app.core.detectors import REGISTRY


@pytest.fixture(params=REGISTRY.names())
def detector_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)
