"""Settings of the patient-matching service (environment: `CPTS_PATIENT_MATCHING_*`, then `CPTS_*`).

The priority weights are one JSON setting, e.g.
`CPTS_PATIENT_MATCHING_PRIORITY='{"ald": 400, "age_70_plus": 250, "c2s": 150, "per_waiting_day": 2}'`
(fields left out keep their defaults; see `cpts_patient_matching.domain.priority` for why the defaults).
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cpts_patient_matching.domain.priority import PriorityWeights
from cpts_platform.settings import ServiceSettings

WEEK_SECONDS = 7 * 24 * 3600


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CPTS_PATIENT_MATCHING_", extra="ignore")

    service_name: str = "patient-matching"
    http_port: int = 8003
    priority: PriorityWeights = Field(default_factory=PriorityWeights,
                                      description="Points of the priority score (JSON object).")
    default_max_distance_km: float = Field(
        default=10.0, gt=0, le=200, description="Mobility of a patient who did not say how far they can go.")
    proposal_deadline_days: int = Field(default=7, ge=1, le=60,
                                        description="Days a GP has to answer a proposal; then it expires.")
    round_interval_seconds: int | None = Field(
        default=WEEK_SECONDS, ge=60,
        description="Scheduled rounds: every CPTS with waiting patients gets a round this often (None: only "
                    "rounds started by a coordinator). The first one comes one interval after the first "
                    "start.")
    scheduler_tick_seconds: float = Field(
        default=60.0, gt=0, le=3600,
        description="How often the background task expires overdue proposals and checks the scheduled jobs.")
    scheduler_enabled: bool = Field(default=True, description="Run the background task in this process.")


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
