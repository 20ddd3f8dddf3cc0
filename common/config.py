"""Configuration: config/config.json validated with pydantic, secrets from the environment.

A bad file ends the process with one message naming the field, before anything connects.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit
from typing import Annotated, Literal

from dotenv import load_dotenv
from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from common.exchanges import venue_for
from common.scan import ScannerConfig
from common.symbols import MAX_SYMBOLS, valid_symbols

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "config" / "config.json"
# scripts/run.sh and scripts/demo.sh write here the path of the config the supervisord they start runs with;
# scripts/stop.sh removes it. The operator's tools (control client, snapshot watcher) default to it.
RUNNING_CONFIG_RECORD = ROOT / "run" / "config.path"
SUPERVISORD_PID = ROOT / "run" / "supervisord.pid"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which field and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TLSConfig(_Strict):
    """TLS to the broker (amqps). The server's certificate is verified against `ca_file` (else the system's
    trusted CAs) and its name against `server_hostname` (else `host`); a client certificate is optional."""
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify: bool = True
    server_hostname: str | None = None

    @model_validator(mode="after")
    def _pair(self):
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        return self


class RabbitMQConfig(_Strict):
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)  # default 5672, or 5671 with tls
    # Only for a process whose role has no password of its own (common/roles.py): no default, so that no
    # process falls back to `guest` without a word.
    user: str | None = None
    password: SecretStr | None = None
    vhost: str = "/"
    exchange: str = Field("futures_data", min_length=1, max_length=255)
    heartbeat_seconds: int = Field(30, ge=5, le=600)
    # Role users are named {user_prefix}{role}: several systems (or tests) can share one broker.
    user_prefix: str = Field("fs_", pattern=r"^[A-Za-z0-9_.-]{0,40}$")
    tls: TLSConfig | None = None
    # The management HTTP API, for scripts/broker_users.py: http://host:management_port
    management_port: int = Field(15672, ge=1, le=65535)

    @model_validator(mode="after")
    def _default_port(self):
        if self.port is None:
            self.port = 5671 if self.tls else 5672
        return self


class ExchangeEntry(_Strict):
    name: str
    api_url: str | None = Field(None, pattern=r"^https?://[^/\s]+(/\S*)?$")
    sandbox: bool = False
    options: dict = Field(default_factory=dict)
    # Order-book levels to ask for; default: the deepest the exchange's REST API gives.
    depth: Annotated[int, Field(gt=0)] | Literal["max"] | None = None
    # The share of the exchange's published rate budget this worker may use: less than 1 where other programs
    # (a trading bot, say) send requests from the same IP and need their part of it.
    rate_share: float = Field(1.0, gt=0, le=1)
    # Per-symbol requests for fields no bulk call carries (HTX's mark price): false saves the requests and
    # publishes null for those fields.
    per_symbol_extras: bool = True
    # Past one IP: each proxy (http, https, socks4, socks5; credentials are secrets, never logged) is one more
    # address with the exchange's whole budget (times rate_share); `direct: false` sends nothing from the
    # machine's own address.
    proxies: list[SecretStr] = Field(default_factory=list, max_length=64)
    direct: bool = True

    @field_validator("proxies")
    @classmethod
    def _proxy_urls(cls, proxies: list[SecretStr]) -> list[SecretStr]:
        for number, proxy in enumerate(proxies, 1):
            problem = proxy_problem(proxy.get_secret_value())
            if problem:
                raise ValueError(f"proxy {number}: {problem}")  # never echo the URL: it may hold a password
        return proxies

    @model_validator(mode="after")
    def _some_address(self):
        if not self.direct and not self.proxies:
            raise ValueError(f"{self.name}: direct is false and no proxies are listed: no address to send from")
        return self

    @model_validator(mode="after")
    def _share_holds_every_call(self):
        # A share smaller than the heaviest call could never send it: refused here, never overspent.
        budget = venue_for(self.name).budget
        problem = budget.share_problem(self.rate_share) if budget else None
        if problem:
            raise ValueError(f"{self.name}: {problem}")
        return self

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        venue_for(name)  # raises ValueError naming the problem
        return name

    @field_validator("depth", mode="before")
    @classmethod
    def _depth_accepted(cls, depth, info: ValidationInfo):
        # Checked here rather than by the type alone: the union's error would list one message per branch.
        if depth is None:
            return None
        if depth != "max" and (isinstance(depth, bool) or not isinstance(depth, int) or depth <= 0):
            raise ValueError(f'depth must be a number of levels above 0 or "max", got {depth!r}')
        # A depth the exchange rejects would be a BadRequest every cycle: refuse it at start instead.
        name = info.data.get("name")  # absent when the name itself was invalid (reported on its own)
        problem = venue_for(name).depth_problem(depth) if name else None
        if problem:
            raise ValueError(f"{problem} on {name}")
        return depth


class CollectionConfig(_Strict):
    interval_seconds: float = Field(5, ge=5)
    retry_attempts: int = Field(3, ge=0, le=10)
    retry_delays: list[float] = Field(default_factory=lambda: [1, 2, 4], min_length=1)
    request_timeout_seconds: float = Field(10, gt=0, le=120)
    statistics_interval_seconds: float = Field(60, gt=0)
    # The market board: every listed perpetual from the bulk calls, each cycle, at no extra request.
    board: bool = True
    # Where no bulk call carries the open interest (Binance), rotate through the market's per-symbol endpoint
    # between cycles, within a tenth of the budget (common/open_interest.py).
    open_interest_rotation: bool = True

    @field_validator("retry_delays")
    @classmethod
    def _non_negative(cls, delays: list[float]) -> list[float]:
        if any(d < 0 for d in delays):
            raise ValueError("retry delays must be >= 0")
        return delays

    def retry_delay(self, retry: int) -> float:
        """Delay before retry number `retry` (1-based); the last delay repeats."""
        return self.retry_delays[min(retry, len(self.retry_delays)) - 1]


class HistoryConfig(_Strict):
    """Settled funding and board samples (SPEC 14): the workers fetch every listed perpetual's settled
    funding within `rate_share` of the exchange's budget, the recorder keeps them with board samples."""
    enabled: bool = True
    backfill_days: float = Field(30, gt=0, le=365)
    rate_share: float = Field(0.1, gt=0, le=0.5)
    # A symbol's settled rate is asked for this long after its funding time (the exchange publishes it
    # within seconds); while it is not there, again after 1, 2, 4... minutes.
    settle_delay_seconds: float = Field(30, ge=0, le=3600)
    sample_seconds: float = Field(300, ge=10, le=86_400)
    retention_days: float = Field(30, gt=0, le=3650)
    database: str = Field("state/history.sqlite", min_length=1)

    @model_validator(mode="after")
    def _kept_as_long_as_fetched(self):
        if self.backfill_days > self.retention_days:
            raise ValueError(f"backfill_days {self.backfill_days:g} exceeds retention_days {self.retention_days:g}: "
                             "the recorder would delete what the backfill fetches")
        return self


class LoggingConfig(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # One file every process appends its log lines to (beside its own stdout log): `tail -f` on it shows the
    # whole system. Relative to the repository root.
    file: str | None = Field(None, min_length=1)


class Config(_Strict):
    rabbitmq: RabbitMQConfig = Field(default_factory=RabbitMQConfig)
    exchanges: list[ExchangeEntry] = Field(min_length=1)
    # May be empty: the workers still publish the whole-market board, and the control API fills the set.
    symbols: list[str]
    collection: CollectionConfig = Field(default_factory=CollectionConfig)
    scanner: ScannerConfig = Field(default_factory=ScannerConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    api_keys_file: str | None = ".env.keys"
    state_file: str = "state/symbols.json"
    logging: LoggingConfig = Field(default_factory=LoggingConfig)

    @field_validator("exchanges", mode="before")
    @classmethod
    def _names_to_entries(cls, value):
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("symbols")
    @classmethod
    def _valid_symbols(cls, symbols: list[str]) -> list[str]:
        unique = valid_symbols(symbols)
        if len(unique) > MAX_SYMBOLS:  # the control API's limit: the controller could not hold more
            raise ValueError(f"{len(unique)} symbols, at most {MAX_SYMBOLS} allowed")
        return unique

    @model_validator(mode="after")
    def _history_fits_every_share(self):
        # The worker's throttle charges a history page inside the entry's share: one too heavy for it could
        # never leave (a configuration error, not a worker retrying forever).
        for entry in self.exchanges if self.history.enabled else ():
            venue = venue_for(entry.name)
            if venue.settled is None or venue.budget is None:
                continue
            smallest = min([venue.budget.limit, *venue.budget.endpoint_limits.values()])
            if smallest * entry.rate_share < venue.settled.heaviest:
                raise ValueError(f"{entry.name}: rate_share {entry.rate_share:g} leaves less than its fullest settled "
                                 f"funding page weighs ({venue.settled.heaviest:g}); raise it to at least "
                                 f"{venue.settled.heaviest / smallest:g}, or set history.enabled to false")
        return self

    @model_validator(mode="after")
    def _unique_exchanges(self):
        names = [e.name for e in self.exchanges]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"exchange listed twice: {', '.join(duplicates)}")
        return self

    def exchange(self, name: str) -> ExchangeEntry:
        for entry in self.exchanges:
            if entry.name == name:
                return entry
        raise ConfigError(f"exchange {name!r} is not in the config's exchanges: "
                          f"{', '.join(e.name for e in self.exchanges)}")

    def path(self, relative: str) -> Path:
        """A path from the config, relative to the repository root."""
        p = Path(relative)
        return p if p.is_absolute() else ROOT / p

    @property
    def log_file(self) -> Path | None:
        """The shared log file (logging.file) as a path, or None."""
        return self.path(self.logging.file) if self.logging.file else None


PROXY_SCHEMES = ("http", "https", "socks4", "socks5", "socks5h")


def proxy_problem(url: str) -> str | None:
    """Why a proxy URL cannot be used (never quoting it), or None."""
    parts = urlsplit(url)
    if parts.scheme not in PROXY_SCHEMES:
        return f"the scheme must be one of {', '.join(PROXY_SCHEMES)}"
    try:
        port = parts.port
    except ValueError:
        return "the port is not a number from 1 to 65535"
    if not parts.hostname or port is None:
        return "expected scheme://[user:password@]host:port"
    return None


def proxy_label(url: str) -> str:
    """A proxy as logs and statistics show it: scheme, host and port, never the credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}"


_ENV_OVERRIDES = {"RABBITMQ_HOST": "host", "RABBITMQ_PORT": "port", "RABBITMQ_USER": "user",
                  "RABBITMQ_PASSWORD": "password", "RABBITMQ_VHOST": "vhost", "RABBITMQ_USER_PREFIX": "user_prefix"}


def dotenv_path() -> Path:
    """The secrets file (.env in the repository root); FUTURES_SCAN_DOTENV names another, e.g. the test
    suite's /dev/null, so that a checkout's own .env never changes what a test process is."""
    return Path(os.environ.get("FUTURES_SCAN_DOTENV") or ROOT / ".env")


def config_path(cli_path: str | None = None) -> Path:
    return Path(cli_path or os.environ.get("FUTURES_SCAN_CONFIG") or DEFAULT_CONFIG)


OPERATOR_CONFIG_HELP = ("config file (default: $FUTURES_SCAN_CONFIG; else, while scripts/run.sh or scripts/demo.sh "
                        "runs the system from this checkout, the config it runs with (recorded in run/config.path); "
                        "else config/config.json)")


def operator_config_path(cli_path: str | None = None) -> Path:
    """The config of the operator's tools: --config, else $FUTURES_SCAN_CONFIG, else the config of the system
    running from this checkout (started by scripts/run.sh or scripts/demo.sh), else config/config.json.
    The processes themselves never guess: supervisord hands them their config."""
    if cli_path or os.environ.get("FUTURES_SCAN_CONFIG"):
        return config_path(cli_path)
    return running_config() or DEFAULT_CONFIG


def running_config() -> Path | None:
    """The config recorded by scripts/run.sh or scripts/demo.sh, while the supervisord they started lives."""
    try:
        recorded = RUNNING_CONFIG_RECORD.read_text(encoding="utf-8").strip()
        pid = int(SUPERVISORD_PID.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    if not recorded or not _process_exists(pid):
        return None  # a record left behind by a supervisord that died without scripts/stop.sh
    return Path(recorded)


def _process_exists(pid: int) -> bool:
    if pid <= 0:  # kill(0) and kill(-n) would address process groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def load_config(path: str | Path | None = None) -> Config:
    """Read, merge the environment (.env and RABBITMQ_*), validate. Raises ConfigError."""
    load_dotenv(dotenv_path(), override=False)
    path = config_path(str(path) if path else None)
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (copy config/config.example.json to start)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object")
    rabbit = raw.setdefault("rabbitmq", {})
    if isinstance(rabbit, dict):
        for env, key in _ENV_OVERRIDES.items():
            if os.environ.get(env):
                rabbit[key] = os.environ[env]
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{path}: " + "; ".join(_describe(err) for err in e.errors())) from None


def _describe(error: dict) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def load_credentials(config: Config, exchange: str) -> dict:
    """API keys for one exchange from the JSON keys file, or {} (public data needs none)."""
    if not config.api_keys_file:
        return {}
    path = config.path(config.api_keys_file)
    if not path.exists():
        return {}
    try:
        keys = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read API keys: {type(e).__name__}") from None  # never echo contents
    if not isinstance(keys, dict):
        raise ConfigError(f"{path}: API keys must be an object by exchange name, not a {type(keys).__name__}")
    entry = keys.get(exchange, {})
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: the API keys of {exchange!r} must be an object "
                          f"(apiKey, secret, password, uid), not a {type(entry).__name__}")
    used = {k: v for k, v in entry.items() if k in ("apiKey", "secret", "password", "uid") and v}
    wrong = sorted(k for k, v in used.items() if not isinstance(v, str))
    if wrong:  # named, never shown: the values are secrets
        raise ConfigError(f"{path}: the API keys of {exchange!r}: {', '.join(wrong)} must be strings")
    return used
