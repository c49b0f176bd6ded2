"""``make run`` sets the broker up as ``python -m shared.ops broker-setup`` does, every time it starts."""

from __future__ import annotations

import pytest

from scripts.run import broker_setup
from shared.events import UNROUTED_QUEUE
from tests.support.broker import depth, probe_event, publish, wait_for

pytestmark = pytest.mark.integration


def test_make_runs_broker_setup_keeps_an_event_nobody_is_bound_for_and_may_run_again(rabbit_config):
    uri = rabbit_config["AMQP_URI"]
    assert broker_setup(uri)
    assert broker_setup(uri)  # the next `make run`: the same exchanges and policy, no error
    probe = probe_event(7).to_json().encode()
    # RabbitMQ applies a policy asynchronously: publish until one copy is kept.
    assert wait_for(
        lambda: publish(uri, probe, routing_key="nobody.listens.here") or depth(uri, UNROUTED_QUEUE)
    )
