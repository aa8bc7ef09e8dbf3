"""``AdapterAffinityRouter``: the Serve request router of the engine replicas.

Serve builds it in the process that holds the deployment handle — the LoRA Mixer front — and
asks it, for each render, which replicas to try in which order. It returns one replica per
rank, in :func:`.routing.rank_replicas` order, so Serve tries the best one first and falls
through to the next when it is busy (``max_ongoing_requests=1``: one render per replica).
The render's adapters and the replicas to avoid travel in the call's ``route`` keyword
(:class:`.routing.RouteHint`); what each replica holds comes from :data:`.routing.BOOK`.
"""

from __future__ import annotations

import logging

from ray.serve.request_router import PendingRequest, RequestRouter, RunningReplica

# Serve pickles this module *by value* into the deployment's config and unpickles it in the
# front: everything it uses goes through the ``routing`` module (pickled by reference), so the
# router reads this process's ``routing.BOOK``, not a copy.
from . import routing


class AdapterAffinityRouter(RequestRouter):
    """Idle replicas before busy ones; among equals, the one holding most of the adapters."""

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if pending_request is not None:
            # every replica is offered at once: wait (back off) before the next round
            pending_request.routing_context.should_backoff = True
        hint = pending_request.kwargs.get("route") if pending_request is not None else None
        if not isinstance(hint, routing.RouteHint):
            hint = None
        by_id = {replica.replica_id.unique_id: replica for replica in candidate_replicas}
        views = [
            routing.ReplicaView(
                replica=replica_id,
                queue=self.replica_queue_len_cache.get(replica.replica_id),
                adapters=routing.BOOK.adapters(replica_id, replica.routing_stats),
            )
            for replica_id, replica in by_id.items()
        ]
        order = routing.rank_replicas(views, hint)
        logging.getLogger("assistant.cluster.router").debug(
            "routing %s over %s -> %s",
            hint,
            [(v.replica, v.queue, sorted(v.adapters)) for v in views],
            order,
        )
        return [[by_id[replica_id]] for replica_id in order]
