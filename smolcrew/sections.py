"""The sections of smolcrew's settings (`[llm]`, `[memory]`, `[cluster]`, ...); smolcrew/config.py assembles them into
`Settings` and reads them from their sources."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

__all__ = [
    "DEFAULT_UPLOAD_TYPES",
    "AgentSettings",
    "Backend",
    "ClusterSettings",
    "FilesSettings",
    "LLMSettings",
    "MemorySettings",
    "PoolSettings",
    "RoutingSettings",
    "SandboxSettings",
    "ServerSettings",
    "ServiceSettings",
    "ValidationSettings",
]

Backend = Literal["scripted", "embedded", "transformers", "openai"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LLMSettings(_Section):
    """How the manager and the specialists think."""

    backend: Backend = "embedded"
    """scripted (canned replies), embedded (packaged GGUF via llama.cpp), transformers, or openai."""
    model: str = "qwen2.5-coder-0.5b"
    """embedded: a known GGUF bundle (see `smolcrew models`); transformers/openai: the model id."""
    model_path: Path | None = None
    """embedded: an explicit GGUF file, used instead of the bundle."""
    api_base: str | None = None
    """openai: the server's base URL, e.g. http://127.0.0.1:8000/v1."""
    api_key: SecretStr | None = None
    n_ctx: int = Field(default=8192, ge=512, le=131072)
    n_threads: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=512, ge=16, le=32768)
    timeout_s: float = Field(default=120.0, gt=0)
    prompt_cache_mb: float = Field(default=512.0, ge=0)
    """embedded: keep llama.cpp's prompt cache (the KV state after each agent's system prompt) on disk under
    `<home>/cache/prompt-cache/`, at most this many MiB (least recently used files go first), so a fresh process
    restores it instead of re-reading the prompts; 0 turns it off."""
    script: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """scripted: the replies, in order (each usually a `<code>...</code>` block); in the environment a JSON list."""

    @field_validator("script", mode="before")
    @classmethod
    def _script_from_json(cls, value: Any) -> Any:
        """SMOLCREW_LLM__SCRIPT arrives as text: decode it here, so a bad one names this field and the fix."""
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"not a JSON list of replies ({exc}); write it in JSON, e.g. "
                """'["<code>final_answer(1)</code>"]'"""
            ) from exc


class AgentSettings(_Section):
    max_steps: int = Field(default=6, ge=1, le=100)
    """The manager's step budget; running out counts as a failed run, never as an answer."""
    specialist_max_steps: int = Field(default=4, ge=1, le=100)
    planning_interval: int | None = Field(default=None, ge=1)
    """Run a planning step every N steps (None: never)."""
    verbosity: int = Field(default=0, ge=0, le=2)
    """smolagents' own console log level: 0 quiet, 1 info, 2 debug."""


class RoutingSettings(_Section):
    mode: Literal["router", "auto", "manager"] = "router"
    """router: the router plans and hands each step straight to its specialist (best with small local
    models); manager: the manager agent decides, with the router's plan in its prompt (best with strong
    models); auto: the router when it is confident, else the manager."""
    use_llm: bool = False
    """Ask the LLM (its output constrained to the specialists' names) when the embedding router is unsure.
    Off by default: with the packaged 0.5B and 1.5B models it lowered accuracy (see README, Routing)."""
    confidence_margin: float = Field(default=0.06, ge=0.0, le=1.0)
    """The router decides alone when its top score beats the runner-up by this much."""
    planner: Literal["off", "learned"] = "off"
    """learned: plan at the level of tools with the learned planner (train it once: `smolcrew route --train`);
    off: the embedding router alone, which still does better end to end (README, Routing)."""


class PoolSettings(_Section):
    budget_mb: float | None = Field(default=None, gt=0)
    """Keep loaded pipelines under this many MiB of parameters (RAM, or VRAM on a GPU), dropping the least
    recently used; None keeps every pipeline loaded."""
    threads: int | None = Field(default=None, ge=1)
    """torch's intra-op threads for the pipelines; None: the CPU cores shared by the runs that go at once (all of
    them for one run, cores ÷ `server.workers` under `smolcrew serve`). torch's own default oversubscribes
    the cores when several runs (or llama.cpp) compute at once: a query embedding then takes 20× longer."""


class FilesSettings(_Section):
    """Which files the tools may read (`require_file` refuses any other, symlinks resolved)."""

    roots: list[Path] = Field(default_factory=list)
    """Folders the tools of a CLI or Python run may read, besides the current directory at crew start (always
    allowed) and the crew's workspace (`<home>/runs`: the runs' outputs). Empty (the default): the current
    directory only. A relative entry is taken from the current directory at crew start. Env:
    `SMOLCREW_FILES__ROOTS='["/data/in", "~/shared"]'` (a JSON list). The HTTP API does not use it: a server run
    reads only its conversation's uploads and its conversation's outputs."""

    @field_validator("roots")
    @classmethod
    def _expand_roots(cls, value: list[Path]) -> list[Path]:
        return [root.expanduser() for root in value]


class SandboxSettings(_Section):
    """Where the agents' code runs (agents/sandbox.py)."""

    executor: Literal["bwrap", "local"] = "bwrap"
    """bwrap: a child process confined by bubblewrap (no network, no view of the home, CPU, memory and
    wall-clock limits; tools stay in this process and the code calls them by name). local: smolagents'
    in-process interpreter, where code can reach the objects it is handed: for trusted models and tests only.
    With bwrap and no bubblewrap on the machine, building the crew fails (`smolcrew doctor` says why)."""
    cpu_s: float = Field(default=30.0, gt=0)
    """CPU seconds one step's code may use (the tools' time not included)."""
    wall_s: float = Field(default=60.0, gt=0)
    """Seconds one step's code may run between tool calls."""
    memory_mb: int = Field(default=2048, ge=256)
    """Address space of the code's process."""
    file_mb: int = Field(default=64, ge=1)
    """Largest file the code's process may write."""
    tool_calls: int = Field(default=200, ge=1)
    """Tool calls one step's code may make (a loop past it is stopped)."""


class MemorySettings(_Section):
    enabled: bool = True
    """Journal every step and mirror it to the stores below."""
    sinks: list[Literal["chroma", "redis", "graph"]] | None = None
    """Stores to mirror to. None (auto): embedded Chroma when installed, Redis when it answers at start, the
    graph when `services.neo4j_uri` is set or a local ArcadeDB can be started (`graph_local`). A store named
    here is used even while it is down: it catches up from the journal when it returns."""
    graph_local: bool = True
    """Without `services.neo4j_uri`, run a local ArcadeDB (`smolcrew[graph-local]`) over `<home>/graph`."""
    graph_idle_s: float = Field(default=300.0, ge=0)
    """Seconds the local ArcadeDB runs with no crew and no Bolt connection before it stops (0: never); a home in
    the temp folder stops it when its last crew closes. The next crew starts it again, with no step lost."""
    graph_heap_mb: int = Field(default=256, ge=64)  # the JVM's -Xmx; bench/graph_server.py measures what it needs
    namespace: str = Field(default="smolcrew", pattern=r"^[A-Za-z0-9_.-]{3,40}$")
    """Key prefix / collection name / graph namespace shared by every store."""


RuleName = Literal[
    "non_empty", "length", "well_formed", "schema", "banned", "citations", "numbers", "evidence", "injection"
]


class ValidationSettings(_Section):
    """The cascade every final answer passes before it reaches the user (see README, Validation)."""

    enabled: bool = True
    rules: list[RuleName] = Field(
        default_factory=lambda: list[RuleName](
            ["non_empty", "length", "well_formed", "banned", "citations", "numbers", "evidence", "injection"]
        )
    )
    """Rule checks, cheapest first."""
    min_length: int = Field(default=1, ge=0)
    max_length: int = Field(default=20_000, ge=1)
    banned: list[str] = Field(default_factory=list)
    """Regular expressions (case-insensitive) an answer must not match."""
    answer_schema: dict[str, Any] | None = None
    """A JSON schema the answer must satisfy (used by the `schema` rule)."""
    claims: Literal["off", "terms", "verifier"] = "terms"
    """Check each claim of an answer against the tool outputs (validators/claims.py), after the rules: terms:
    its names, dates and numbers must be in them; verifier: also the claim itself, by the trained claim verifier
    (validators/verifier.py; `smolcrew validate train` builds it); off: no claim check."""
    claims_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """With the verifier, a claim supported with a lower probability fails the answer."""
    judge: Literal["none", "llm", "llm_claims", "nli"] = "none"
    """llm_claims: the configured LLM's probability of "Yes" that the evidence supports each claim (needs the
    embedded backend, which reports token probabilities); llm: the LLM grades the whole answer against the
    evidence with a rubric (any backend); nli: an NLI
    cross-encoder (model role `nli`) checks that the evidence entails the answer; none: rules only."""
    judge_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """A judge score below this fails the answer."""
    escalate_below: float = Field(default=0.0, ge=0.0, le=1.0)
    """Ask a person when the cascade's confidence is below this (0: never for low confidence)."""
    approval_tools: list[str] = Field(default_factory=list)
    """Runs that call any of these tools wait for a person's approval before their answer is returned."""
    unchecked: Literal["fail", "escalate"] = "escalate"
    """An answer that still rests on no tool output after the retries, for a task that names a file or asks a
    factual question (the `evidence` rule): fail the run, or ask a person (`smolcrew approvals`)."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """How many times an agent may correct a rejected final answer before the run fails validation."""
    approval_timeout_s: float = Field(default=0.0, ge=0.0)
    """How long a run waits for a person; 0 returns at once with state `pending_approval` (resume it later
    with `smolcrew runs resume RUN` once `smolcrew approvals approve` has answered)."""


class ServiceSettings(_Section):
    redis_url: str = "redis://127.0.0.1:6379/0"
    """redis://HOST:PORT/DB, rediss:// (TLS) or unix:///path/to/redis.sock."""
    neo4j_uri: str | None = None
    neo4j_user: str = "neo4j"
    neo4j_password: SecretStr | None = None
    neo4j_database: str = "neo4j"
    chroma_url: str | None = None

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        """Refuse what the Redis client cannot parse now, not when a store or the approval queue first opens."""
        fix = "write redis://HOST:PORT/DB (rediss:// for TLS, unix:///path/to.sock), e.g. redis://127.0.0.1:6379/0"
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a Redis URL; {fix}")
        try:
            parts.port  # noqa: B018 (parsing the port is the check)
        except ValueError as exc:
            raise ValueError(f"{exc}; {fix}") from exc
        return value


DEFAULT_UPLOAD_TYPES = ["image/*", "audio/*", "video/*", "application/pdf", "text/plain", "text/markdown"]


class ServerSettings(_Section):
    """The HTTP API (`smolcrew serve`, smolcrew/api.py)."""

    host: str = "127.0.0.1"
    """Interface to bind. Anything but a loopback address needs `token`: the server refuses to start without."""
    port: int = Field(default=8765, ge=1, le=65535)
    token: SecretStr | None = None
    """When set, every request needs `Authorization: Bearer <token>` (browsers: a `token` cookie or query param).
    Under 32 characters it is refused at start; `smolcrew serve --generate-token` makes one."""
    max_upload_mb: float = Field(default=25.0, gt=0)
    """Largest uploaded file, in MiB (413 above). A multipart body, all its files, may be this + 64 KiB."""
    max_json_kb: int = Field(default=1024, ge=1)
    """Largest other body (JSON, forms), in KiB: 413 by Content-Length or as it streams, never read whole."""
    max_json_depth: int = Field(default=64, ge=1, le=500)
    """Deepest `[`/`{` nesting of a JSON body: 400 above, checked before parsing (deep JSON is a RecursionError)."""
    body_timeout_s: float = Field(default=30.0, gt=0)
    """Longest wait for the next piece of a request body; a client that stalls longer gets 408."""
    cors_origins: list[str] = Field(default_factory=list)
    """Origins (`https://app.example.com`) whose pages may call the API and UI with credentials; others get 403."""
    upload_types: list[str] = Field(default_factory=lambda: list(DEFAULT_UPLOAD_TYPES))
    """Allowed upload media types; `type/*` allows a whole family. Others are refused with 415."""
    workers: int = Field(default=2, ge=1, le=64)
    """Crews in the pool: how many runs (of different conversations) proceed at once."""
    tracing: bool = False
    """Send OpenTelemetry traces of the agents (needs openinference-instrumentation-smolagents, opentelemetry-sdk
    and opentelemetry-exporter-otlp)."""
    otlp_endpoint: str | None = None
    """Where traces go (OTLP/HTTP, e.g. http://127.0.0.1:4318/v1/traces); None: the exporter's default."""


class Placement(_Section):
    """What each Ray actor or replica of a role asks the cluster for; Ray places it on a node that has it."""

    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    """A fraction shares a GPU (0.5: two replicas per GPU)."""
    resources: dict[str, float] = Field(default_factory=dict)
    """Custom resources, e.g. `{gpu_box = 1}` for nodes started with `ray start --resources '{"gpu_box": 8}'`."""


class DeploymentSettings(Placement):
    """A pipeline role served by Ray Serve instead of loaded in each worker (`[cluster.deployments.<role>]`)."""

    replicas: int = Field(default=1, ge=1, le=256)
    max_batch_size: int = Field(default=8, ge=1, le=512)
    """Requests one replica runs as one batch (Serve's `@serve.batch`), for tools that batch."""
    batch_wait_s: float = Field(default=0.01, ge=0, le=10)
    """Longest wait for a batch to fill."""


class ClusterSettings(_Section):
    """Where the server's runs execute: this process's pool of Crews, or a Ray cluster (README, Scale out)."""

    engine: Literal["local", "ray"] = "local"
    """local: `server.workers` Crews in this process. ray: run workers on the Ray cluster at `address`; every
    store must then be a shared service (`smolcrew doctor` says which is not)."""
    address: str = "auto"
    """The Ray cluster: `auto` (the node `ray start` made on this machine), the head's `HOST:PORT`, or
    `ray://HOST:10001` (Ray Client)."""
    namespace: str = Field(default="smolcrew", pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    """Ray namespace of smolcrew's named actors: API instances with the same namespace share the run workers."""
    workers: int = Field(default=2, ge=1, le=1024)
    """Run workers on the cluster: Ray actors, each with a warm Crew, each running one run at a time."""
    runs: Placement = Field(default_factory=Placement)
    """What each run worker asks Ray for (placement of the `runs` role)."""
    deployments: dict[str, DeploymentSettings] = Field(default_factory=dict)
    """Pipeline roles served by Ray Serve, by role name (see `smolcrew models`); others load in each worker."""
