"""Pipeline roles served by Ray Serve (`[cluster.deployments.<role>]`): each replica loads the role's pipeline once,
on its own node's device, and the Crews' pools call it through a `RemotePipeline` instead of loading it themselves.

Calls are batched the way the role's pipelines batch: `encode(list)` (sentence-transformers) and `pipeline(list)`
(transformers pipelines) from many callers are joined into one call of up to `max_batch_size` requests (Serve's
`@serve.batch`), then split back. Other methods run one call at a time. A tool that reads a pipeline's attributes
(`pipeline.model.config`), not only its methods, needs the pipeline itself: leave its role out of the deployments.

This module imports Ray Serve: only cluster mode loads it.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ray import serve

from smolcrew.errors import ConfigError, ModelUnavailableError
from smolcrew.manifest import manifest
from smolcrew.pool import PipelinePool

if TYPE_CHECKING:
    from smolcrew.config import Settings

__all__ = ["PipelineReplica", "RemotePipeline", "app_name", "deploy", "remote_pipelines", "undeploy"]

BATCHED = ("encode", "__call__")
"""The methods whose first argument, a list, is batched across callers."""


def app_name(settings: Settings, role: str) -> str:
    """The Serve application of `role` (Serve apps are cluster-wide: the namespace keeps crews apart)."""
    return f"{settings.cluster.namespace}-{role}"


class PipelineReplica:
    """One replica of a pipeline role: the pipeline, and the sizes of the batches it ran (newest last)."""

    def __init__(self, role: str, device: str, overrides: dict[str, str], max_batch_size: int, wait_s: float) -> None:
        self.role = role
        self.pipeline = PipelinePool(device=device, overrides=overrides).get(role)
        self.batch_sizes: list[int] = []
        self._batched.set_max_batch_size(max_batch_size)  # type: ignore[attr-defined]  # serve.batch's setters
        self._batched.set_batch_wait_timeout_s(wait_s)  # type: ignore[attr-defined]

    async def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if method in BATCHED and len(args) == 1 and isinstance(args[0], list):
            return await self._batched((method, args[0], tuple(sorted(kwargs.items()))))
        return await asyncio.to_thread(getattr(self.pipeline, method), *args, **kwargs)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batched(self, requests: list[tuple[str, list[Any], tuple[tuple[str, Any], ...]]]) -> list[Any]:
        self.batch_sizes = [*self.batch_sizes[-999:], len(requests)]
        results: list[Any] = [None] * len(requests)
        groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[int]] = {}
        for index, (method, _, kwargs) in enumerate(requests):
            groups.setdefault((method, kwargs), []).append(index)
        for (method, kwargs), members in groups.items():  # one call per method and keyword arguments
            joined = [item for index in members for item in requests[index][1]]
            output = await asyncio.to_thread(getattr(self.pipeline, method), joined, **dict(kwargs))
            start = 0
            for index in members:
                size = len(requests[index][1])
                results[index] = output[start : start + size]
                start += size
        return results

    def stats(self) -> dict[str, Any]:
        return {"role": self.role, "batch_sizes": list(self.batch_sizes)}


class RemotePipeline:
    """Stands in for a role's pipeline in a PipelinePool: calls and method calls go to the role's deployment."""

    def __init__(self, app: str) -> None:
        self.app = app
        self._handle: Any = None

    def __repr__(self) -> str:
        return f"RemotePipeline({self.app!r})"

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if self._handle is None:
            try:
                self._handle = serve.get_app_handle(self.app)
            except Exception as exc:  # Serve says "not found" in several ways
                raise ModelUnavailableError(
                    f"no Ray Serve deployment {self.app!r} ({exc})",
                    backend="ray-serve",
                    fix="start the server in cluster mode (it deploys [cluster.deployments]) or remove the role there",
                ) from exc
        return self._handle.call.remote(method, args, kwargs).result()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("__call__", *args, **kwargs)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return functools.partial(self._call, name)


def deploy(settings: Settings) -> dict[str, str]:
    """Deploy (or update) every role of `cluster.deployments` on the joined Ray cluster; role -> Serve app name.

    Raises:
        ConfigError: a role that is not a model role (see `smolcrew models`).
    """
    roles = manifest()
    unknown = sorted(set(settings.cluster.deployments) - set(roles))
    if unknown:
        raise ConfigError(
            f"cluster.deployments names unknown model roles {unknown}: use roles from `smolcrew models`",
            field="cluster.deployments",
        )
    if not settings.cluster.deployments:
        return {}
    serve.start(proxy_location="Disabled")  # handles only: the API is smolcrew's own
    deployed = {}
    for role, spec in settings.cluster.deployments.items():
        options = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus, "resources": dict(spec.resources)}
        app = serve.deployment(
            name=role,
            num_replicas=spec.replicas,
            ray_actor_options=options,
            max_ongoing_requests=spec.max_batch_size * 4,  # enough queued calls to fill batches
        )(PipelineReplica)
        device = "cuda" if spec.num_gpus > 0 else "cpu"
        bound = app.bind(role, device, dict(settings.models), spec.max_batch_size, spec.batch_wait_s)
        serve.run(bound, name=app_name(settings, role), route_prefix=None)
        deployed[role] = app_name(settings, role)
    return deployed


def undeploy(settings: Settings) -> None:
    """Delete the deployments of `settings` (their replicas let go of their GPUs)."""
    for role in settings.cluster.deployments:
        serve.delete(app_name(settings, role))


def remote_pipelines(settings: Settings) -> dict[str, RemotePipeline]:
    """What a PipelinePool of a cluster Crew uses for the deployed roles."""
    return {role: RemotePipeline(app_name(settings, role)) for role in settings.cluster.deployments}
