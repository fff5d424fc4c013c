"""Settings of the indicators service (environment: `CPTS_INDICATORS_*`, then `CPTS_*`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cpts_indicators.domain.masking import DEFAULT_THRESHOLD
from cpts_indicators.domain.periods import PeriodKind
from cpts_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CPTS_INDICATORS_", extra="ignore")

    service_name: str = "indicators"
    http_port: int = 8004
    small_cell_threshold: int = Field(
        default=DEFAULT_THRESHOLD, ge=1, le=100,
        description="Counts from 1 to this value minus one are masked in every output (CNAM practice: "
                    "under 6).")
    snapshot_periods: list[PeriodKind] = Field(
        default_factory=lambda: [PeriodKind.MONTH],
        description="Periods whose snapshots are sent on the `indicators` topic when an event changes them.")
    snapshot_interval_seconds: float = Field(
        default=0.5, ge=0, le=60,
        description="Snapshots are recomputed by a worker of the service at most this often, for every CPTS "
                    "and period the events of the interval changed (marked in the consumer's transaction). "
                    "0: in the consumer's transaction itself, once per batch (slower ingestion).")
    snapshot_max_delay_seconds: float = Field(
        default=5.0, ge=0, le=300,
        description="While the consumers catch up with a backlog (a burst of events, a replay), the snapshots "
                    "are recomputed once it is caught up, or at the latest this long after the previous pass, "
                    "rather than every interval (a pass recomputes each period from all its facts).")
    max_periods_per_request: int = Field(default=400, ge=1, le=5000,
                                         description="Most periods a series or an export may cover.")


_current: Settings | None = None


def configure(settings: Settings) -> None:
    """Make these the settings of the event handlers of this process (which receive only the event)."""
    global _current
    _current = settings


def current_settings() -> Settings:
    """The settings the running service configured, or those of the environment (CLI, tools)."""
    global _current
    if _current is None:
        _current = Settings()
    return _current
