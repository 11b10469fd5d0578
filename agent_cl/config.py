"""Settings shared by every part of agent-cl.

One frozen dataclass, read from an optional `agent-cl.toml` and overridden by `AGENT_CL_*`
environment variables, so a laptop, CI and a server all configure the same object the same way.
Environment variables win over the file because operators change them per process.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# How a night treats the published adapter: train it on, or freeze it under a new LoRA and fold
# the two (consolidation.stacking). ConsolidationConfig checks the same names.
LORA_PER_NIGHT = ("continue", "fresh")
SLEEP_DTYPES = ("auto", "float32", "bfloat16")

ENV_PREFIX = "AGENT_CL_"
DEFAULT_HOME = Path.home() / ".cache" / "agent-cl"


class ConfigError(ValueError):
    """Raised when a setting has a value agent-cl cannot use."""


API_KEY_ENV = ENV_PREFIX + "VLLM_API_KEY"
API_KEY_FILE_ENV = API_KEY_ENV + "_FILE"


def vllm_api_key() -> str | None:
    """The served model's key, read in one place: `AGENT_CL_VLLM_API_KEY`, or the file that
    `AGENT_CL_VLLM_API_KEY_FILE` names. Never a command-line argument: argv is visible to
    every user of the machine (`ps`)."""
    key = os.environ.get(API_KEY_ENV)
    if not key and os.environ.get(API_KEY_FILE_ENV):
        path = Path(os.environ[API_KEY_FILE_ENV])
        try:
            key = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{API_KEY_FILE_ENV}={path} cannot be read: {exc}") from exc
        if not key:
            raise ConfigError(f"{API_KEY_FILE_ENV}={path} is empty")
    return key or None


TENANT_MAX_LENGTH = 64


class Tenant(str):
    """A tenant name that has passed `validate_tenant`: checked once at the edge, then carried
    as this type, so deeper layers (`Tenant(x)` on a Tenant is free) never check it again."""

    __slots__ = ()

    def __new__(cls, name: str) -> Tenant:
        if type(name) is cls:
            return name
        return super().__new__(cls, _checked_tenant(name))


def _checked_tenant(name: object) -> str:
    """Tenant names name directories, store filters and served model names: ASCII letters,
    digits, '-' and '_', at most 64 characters, everywhere."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > TENANT_MAX_LENGTH
        or not name.isascii()
        or not name.replace("-", "").replace("_", "").isalnum()
    ):
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise ConfigError(
            f"tenant must be 1-{TENANT_MAX_LENGTH} ASCII letters, digits, '-' or '_', got {shown}"
        )
    return name


def validate_tenant(name: str) -> Tenant:
    """The one tenant check: a `Tenant`, or ConfigError naming the rule."""
    return Tenant(name)


@dataclass(frozen=True)
class TenantPaths:
    """Where one tenant's night keeps its files: the one spelling of the on-disk layout."""

    adapters: Path  # the adapter registry (versions, CURRENT)
    sleep_state: Path  # the sleep job's journal, checkpoints and lock
    reports: Path  # one JSON report per night

    SLEEP_DIR = ".sleep"
    JOURNAL_FILE = "journal.json"


@dataclass(frozen=True)
class Settings:
    """Where agent-cl keeps its state and how it uses this machine.

    Parameters that control storage:
        home: data directory holding the provisioned model, the Chroma store, the adapter
            registry and job reports.
    Parameters that control compute:
        torch_threads: threads torch may use. Two heavy processes each using every core slowed
            generation and training 3-15x on a 2-core machine (measured), so we set it on purpose.
        seed: seed for sampling and data order.
    """

    home: Path = field(default=DEFAULT_HOME, metadata={"help": "data directory"})
    model_dir: Path | None = field(
        default=None,
        metadata={"help": "HF model directory to use; default: the provisioned embedded model"},
    )
    tenant: str = field(default="default", metadata={"help": "agent whose demonstrations we use"})
    torch_threads: int = field(default=2, metadata={"help": "torch intra-op threads"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    adapter_max_rank: int = field(
        default=16, metadata={"help": "largest LoRA rank published (and served by vLLM)"}
    )
    adapter_keep: int = field(default=10, metadata={"help": "versions kept on disk for rollback"})
    store_url: str | None = field(
        default=None,
        metadata={
            "help": "Chroma server shared by several processes (`agent-cl memory serve`); "
            "default: the embedded store in <home>/store, one process at a time"
        },
    )
    store_port: int = field(default=8001, metadata={"help": "port of `agent-cl memory serve`"})
    # -- serving ----------------------------------------------------------------------------
    servers: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "vLLM servers (`agent-cl serve` URLs) a night swaps after publishing; "
            "env: comma-separated"
        },
    )
    serve_host: str = field(
        default="127.0.0.1",
        metadata={
            "help": "bind address of `agent-cl serve` (non-loopback needs AGENT_CL_VLLM_API_KEY)"
        },
    )
    serve_port: int = field(default=8000, metadata={"help": "port of `agent-cl serve`"})
    serve_inference_keys: Path | None = field(
        default=None,
        metadata={
            "help": 'JSON file {"<key>": ["tenant", ...]} of inference keys, each limited '
            "to its tenants' model names (needs AGENT_CL_VLLM_API_KEY, the admin key)"
        },
    )
    serve_merged: bool = field(
        default=False,
        metadata={
            "help": "`agent-cl serve` answers with one tenant's version merged into the weights "
            "(base speed on CPU) instead of LoRA adapters"
        },
    )
    serve_max_body_bytes: int = field(
        default=1 << 20, metadata={"help": "largest request body `agent-cl serve` reads"}
    )
    # -- sleep (one night) ------------------------------------------------------------------
    sleep_method: str | None = field(
        default=None,
        metadata={"help": "consolidation recipe; default: the measured default (sft_kl_near)"},
    )
    sleep_steps: int | None = field(
        default=None, metadata={"help": "training steps; default: steps_per_demo x claimed"}
    )
    sleep_steps_per_demo: int = field(
        default=8, metadata={"help": "training steps per demonstration a night claims"}
    )
    sleep_max_demos: int | None = field(
        default=64,
        metadata={"help": "a night's budget: most demonstrations claimed, oldest first"},
    )
    # 16, measured (docs/results/long_run/README.md, gpu_replay_coverage/): the facts a night
    # forgets are the ones it did not replay, and over six nights of the quick long run replay
    # 16 kept the weakest night at 0.43 against replay 4's 0.29 and 0.33 (seeds 0 and 1), facts
    # 0.58 / 0.54 against 0.42 / 0.38, at the same robust retention. It costs 8 training steps
    # per replayed demonstration (nights about 1.5x as long); replay 4 (the 20-night run's
    # setting) had itself kept night 1's skills 0.78 -> 0.78 where no replay fell to 0.33.
    sleep_replay: int = field(
        default=16, metadata={"help": "consolidated demonstrations replayed per night"}
    )
    # None (the same as sleep_steps_per_demo): replaying every consolidated demonstration kept
    # the most facts on the GPU (gpu_replay_coverage/) but took the new night's share of the
    # steps; replaying it all at 2 steps each published the quick run's night 2 where the
    # default's was rejected, then its nights 3-4 hit the ceiling against the base (2 of 4
    # published, weakest night 0.33 against 0.57; one CPU run, quick_light64/).
    sleep_replay_steps_per_demo: int | None = field(
        default=None,
        metadata={
            "help": "training steps per replayed demonstration, and its weight beside a new "
            "one's sleep_steps_per_demo (default: the same)"
        },
    )
    # 0: uniform over every consolidated demonstration. Half from the newest night (0.5) was
    # measured on the quick long run (docs/results/long_run/README.md): skills_kept_min 0.56
    # against 0.43, but its night 3 was rejected and night 1's facts fell to 0.56; one seed.
    sleep_replay_recent: float = field(
        default=0.0,
        metadata={
            "help": "share of the replay drawn from the demonstrations the newest version "
            "consolidated (the rest: uniformly from all of them)"
        },
    )
    # "continue" until the fresh-LoRA lever is measured on a run of several nights
    # (docs/results/long_run/README.md).
    sleep_lora_per_night: str = field(
        default="continue",
        metadata={
            "help": "'continue' training the served adapter each night, or 'fresh': a new "
            "LoRA per night on the earlier nights frozen, folded into one served adapter"
        },
    )
    # 8, measured (docs/results/long_run/README.md, gpu_rank16/): rank 16 (alpha 32) forgot
    # more and kept no more on the quick long run (the gate published 9 of 19 nights against 13
    # of 18 at rank 8; weakest night 0.33-0.43 against 0.43-0.57) and its 128-demonstration
    # night was rejected at 3.2 points. With lora_per_night "continue" the first night's rank
    # is the adapter's for its whole life.
    sleep_lora_rank: int = field(
        default=8,
        metadata={
            "help": "LoRA rank a night trains (at most adapter_max_rank; LoRA alpha is twice it)"
        },
    )
    # "auto" is fp32 on CUDA as on CPU: on an H200 the quick long run's first night, trained
    # and gated in bf16, lost 3-9 of 128 robust items in six runs of the same night (the gate
    # published 18 of 37 nights); in fp32 it lost 1, as on 2 CPU cores, in three runs (the
    # gate published 20 of 25 nights). docs/results/long_run/README.md (gpu_levers/,
    # gpu_levers_fp32/). bfloat16 halves training memory, for models too large for fp32.
    sleep_dtype: str = field(
        default="auto",
        metadata={
            "help": "precision a night trains and gates in: auto (fp32, on CUDA or CPU), "
            "float32 or bfloat16"
        },
    )
    sleep_max_attempts: int = field(
        default=2,
        metadata={
            "help": "nights a demonstration may be trained in: a rejected night's "
            "demonstrations go back to pending until they reach it"
        },
    )
    sleep_checkpoint_every: int = field(
        default=8, metadata={"help": "training steps between checkpoints (0: none)"}
    )
    # -- gate -------------------------------------------------------------------------------
    gate_enabled: bool = field(default=True, metadata={"help": "publish only if the gate passes"})
    gate_max_retention_drop: float = field(
        default=0.03, metadata={"help": "largest robust-retention drop a candidate may cause"}
    )
    gate_max_drop_from_base: float = field(
        default=0.03,
        metadata={"help": "largest robust-retention drop below the base model, all nights"},
    )
    gate_max_kl_from_base: float = field(
        default=0.05, metadata={"help": "largest mean KL from the base model on open prompts"}
    )
    # (0.75, 0.5), measured (docs/results/long_run/README.md, benchmarks/shrink_rejected.py):
    # the quick long run's night 2, rejected at 7.8 points under the base while it answered all
    # its skills' held-out questions, stood 2.3 points under at 0.75 of its update with every
    # skill kept, 0.8 under at 0.5 with none of its facts. Each share tried costs one more
    # gate (85-120 s on 2 cores on 128 robust items); () turns it off. One quick run with it:
    # 3 of 4 nights published, as without it (docs/results/long_run/README.md, quick_shrink/).
    gate_shrink: tuple[float, ...] = field(
        default=(0.75, 0.5),
        metadata={
            "help": "shares of a rejected night's update tried in turn when it learned but "
            "forgot past the gate; the first that passes publishes (empty: none)"
        },
    )
    # -- daemon -----------------------------------------------------------------------------
    daemon_cron: str | None = field(
        default=None, metadata={"help": "crontab expression for nightly runs, e.g. '0 2 * * *'"}
    )
    daemon_min_pending: int | None = field(
        default=None, metadata={"help": "run a night as soon as this many are pending"}
    )
    daemon_idle_minutes: float | None = field(
        default=None, metadata={"help": "run a night after this long without a new one"}
    )
    daemon_poll_seconds: float = field(
        default=60.0, metadata={"help": "how often the store-based triggers are checked"}
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        for name in ("model_dir", "serve_inference_keys"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)).expanduser())
        object.__setattr__(self, "servers", tuple(self.servers))
        object.__setattr__(self, "tenant", Tenant(self.tenant))
        object.__setattr__(self, "gate_shrink", _shares("gate_shrink", self.gate_shrink))
        for name in (
            "torch_threads",
            "adapter_max_rank",
            "adapter_keep",
            "sleep_steps_per_demo",
            "sleep_max_attempts",
            "sleep_lora_rank",
        ):
            _at_least(name, getattr(self, name), 1)
        if self.sleep_lora_rank > self.adapter_max_rank:
            raise ConfigError(
                f"sleep_lora_rank ({self.sleep_lora_rank}) must be at most adapter_max_rank "
                f"({self.adapter_max_rank}): a larger adapter could not be served"
            )
        for name in ("sleep_replay", "sleep_checkpoint_every"):
            _at_least(name, getattr(self, name), 0)
        _at_least("sleep_steps", self.sleep_steps, 1)
        _at_least("sleep_replay_steps_per_demo", self.sleep_replay_steps_per_demo, 1)
        if self.sleep_replay_steps_per_demo is not None and self.sleep_steps is not None:
            raise ConfigError(
                "sleep_replay_steps_per_demo sizes a night by its demonstrations; "
                "it cannot be combined with a fixed sleep_steps"
            )
        _one_of("sleep_lora_per_night", self.sleep_lora_per_night, LORA_PER_NIGHT)
        _one_of("sleep_dtype", self.sleep_dtype, SLEEP_DTYPES)
        _at_least("sleep_max_demos", self.sleep_max_demos, 1)
        _at_least("daemon_min_pending", self.daemon_min_pending, 1)
        for name in ("store_port", "serve_port"):
            if not 0 < getattr(self, name) < 65536:
                raise ConfigError(f"{name} must be a port (1-65535), got {getattr(self, name)}")
        for name in ("sleep_replay_recent", "gate_max_retention_drop", "gate_max_drop_from_base"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 < self.gate_max_kl_from_base <= 1:  # 0 would reject every trained adapter
            raise ConfigError(
                f"gate_max_kl_from_base must be in (0, 1], got {self.gate_max_kl_from_base}"
            )
        for name in ("daemon_idle_minutes", "daemon_poll_seconds"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):  # nan fails too
                raise ConfigError(f"{name} must be a number > 0, got {value}")
        if not all(isinstance(url, str) for url in self.servers):
            raise ConfigError(f"servers must be a list of URL strings, got {list(self.servers)!r}")
        for url in (self.store_url, *self.servers):
            if url is not None and not url.startswith(("http://", "https://")):
                name = "store_url" if url == self.store_url else "servers"
                raise ConfigError(f"{name} must be http:// or https:// URLs, got {url!r}")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def adapters_dir(self) -> Path:
        return self.paths().adapters

    @property
    def adapters_root(self) -> Path:
        return self.home / "adapters"

    def paths(self, tenant: str | None = None) -> TenantPaths:
        """`tenant`'s directories (default: this settings' tenant)."""
        name = Tenant(tenant or self.tenant)
        adapters = self.adapters_root / name
        return TenantPaths(adapters, adapters / TenantPaths.SLEEP_DIR, self.reports_dir)

    def unfinished_tenants(self) -> tuple[str, ...]:
        """Tenants whose last sleep run was killed: a journal is still in their sleep state."""
        pattern = f"*/{TenantPaths.SLEEP_DIR}/{TenantPaths.JOURNAL_FILE}"
        return tuple(sorted(p.parents[1].name for p in self.adapters_root.glob(pattern)))

    def known_tenants(self) -> tuple[str, ...]:
        """This settings' tenant and every tenant with an adapter directory, sorted."""
        found = {self.tenant}
        if self.adapters_root.is_dir():
            for child in self.adapters_root.iterdir():
                try:
                    found.add(Tenant(child.name))
                except ConfigError:
                    continue  # not a tenant directory
        return tuple(sorted(found))

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from `agent-cl.toml` (or `path`), then `AGENT_CL_*` environment
        variables, then `overrides` (command-line options); each later source wins. In the
        file, `[agent-cl]` holds the plain settings and `[agent-cl.sleep]`, `[agent-cl.gate]`,
        `[agent-cl.daemon]`, `[agent-cl.serve]`, `[agent-cl.store]` the grouped ones
        (`[agent-cl.sleep] method` is the setting `sleep_method`)."""
        toml_path = Path(path or os.environ.get(ENV_PREFIX + "CONFIG") or "agent-cl.toml")
        values: dict[str, Any] = {}
        if toml_path.exists():
            values = _read_toml(toml_path)
        elif path is not None or ENV_PREFIX + "CONFIG" in os.environ:
            raise ConfigError(f"config file {toml_path} does not exist")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ConfigError(f"unknown settings in {toml_path}: {sorted(unknown)}")
        for name, fld in known.items():
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _coerce(raw, fld.type, ENV_PREFIX + name.upper())
        values.update({k: v for k, v in overrides.items() if v is not None})
        for name, value in values.items():
            _check_type(name, value, known[name].type, toml_path)
        return cls(**values)


GROUPS = ("sleep", "gate", "daemon", "serve", "store")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            table = tomllib.load(fh).get("agent-cl", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except OSError as exc:  # a directory, no permission
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from exc
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [agent-cl] must be a table")
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    for group, sub in table.items():
        if not isinstance(sub, dict):
            continue
        if group not in GROUPS:
            raise ConfigError(f"unknown section [agent-cl.{group}] in {path}; use {GROUPS}")
        prefix = f"{group}_"
        for key, value in sub.items():
            values[prefix + key] = value
    return values


def _shares(name: str, values: Any) -> tuple[float, ...]:
    """Fractions in (0, 1), from a TOML list or an environment variable's "0.75,0.5"."""
    try:
        shares = tuple(float(v) for v in values if not isinstance(v, bool))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be numbers in (0, 1), got {values!r}") from exc
    if len(shares) != len(tuple(values)) or any(not 0 < v < 1 for v in shares):
        raise ConfigError(f"{name} must be numbers in (0, 1), got {list(values)!r}")
    return shares


def _at_least(name: str, value: int | None, low: int) -> None:
    if value is not None and value < low:
        raise ConfigError(f"{name} must be >= {low}, got {value}")


def _one_of(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _check_type(name: str, value: Any, annotation: Any, source: Path) -> None:
    """A wrong type in the file names the setting (dataclasses would take it silently)."""
    text = str(annotation)
    kinds = {
        "bool": bool,
        "int": int,
        "float": (int, float),
        "str": str,
        "tuple": (list, tuple),  # never a bare string: "http://x" is not a list of URLs
        "Path": (str, Path),
    }
    outer = text.split("|")[0].split("[")[0].strip()  # "tuple[str, ...]" -> "tuple"
    allowed = [kinds[outer]] if outer in kinds else []
    if value is None or not allowed:
        return
    if isinstance(value, bool) and "bool" not in text:
        allowed = []
    if not any(isinstance(value, kind) for kind in allowed):
        raise ConfigError(f"setting {name} ({source}) must be {text}, got {value!r}")


def _coerce(raw: str, annotation: Any, variable: str) -> Any:
    text = str(annotation)
    if raw.strip() == "" and text.startswith("tuple"):  # an empty list: none
        return ()
    if raw.strip() == "" and "None" not in text:  # AGENT_CL_HOME= must not mean "here"
        raise ConfigError(f"{variable} is empty; unset it or give a value ({text})")
    try:
        if raw == "" and "None" in text:
            return None
        if text.startswith("bool"):
            if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if text.startswith("int"):
            return int(raw)
        if text.startswith("float"):
            return float(raw)
        if text.startswith("tuple"):
            return tuple(u.strip() for u in raw.split(",") if u.strip())
        if "Path" in text:
            return Path(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}={raw!r} is not a valid {text}") from exc
    return raw


def settings_reference() -> str:
    """docs/configuration.md's table, from the fields themselves (a test keeps them equal)."""
    rows = ["| setting | file | environment | default | what |", "|---|---|---|---|---|"]
    for fld in dataclasses.fields(Settings):
        group = next((g for g in GROUPS if fld.name.startswith(g + "_")), None)
        key = fld.name[len(group) + 1 :] if group else fld.name
        where = f"`[agent-cl.{group}] {key}`" if group else f"`[agent-cl] {fld.name}`"
        default = fld.default if fld.default is not dataclasses.MISSING else None
        if isinstance(default, Path):
            default = str(default).replace(str(Path.home()), "~")
        help_text = fld.metadata.get("help", "").replace("|", "\\|")
        rows.append(
            f"| {fld.name} | {where} | `{ENV_PREFIX}{fld.name.upper()}` | `{default!r}` | "
            f"{help_text} |"
        )
    return "\n".join(rows) + "\n"
