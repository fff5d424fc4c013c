"""Settings of the snp-dispatch service (environment: `CPTS_SNP_DISPATCH_*`, then `CPTS_*`)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from cpts_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="CPTS_SNP_DISPATCH_", extra="ignore")

    service_name: str = "snp-dispatch"
    http_port: int = 8002
    hold_ttl_seconds: int = Field(default=180, ge=10, le=1800, description="How long a held slot stays reserved.")
    hold_sweep_interval_seconds: float = Field(
        default=15.0, ge=0, le=600,
        description="How often expired holds are cleared and announced (`slot.hold_expired`); 0 turns it off. "
                    "Searches treat an expired hold as free at once, whatever this interval.")
    search_min_professionals: int = Field(
        default=5, ge=1, description="The radius is enlarged until this many professionals with free slots are found.")
    search_max_radius_km: float = Field(default=50.0, gt=0, le=200, description="Largest search radius (SAS: 50 km).")
    search_default_radius_km: float = Field(
        default=20.0, gt=0, description="Radius for a département missing from the SAS radii table.")
    search_default_step_km: float = Field(default=10.0, gt=0)
    search_first_slots_per_day: int = Field(default=3, ge=1, le=20, description="Free slots shown per card and day.")
    booking_url_template: str = Field(
        default="http://127.0.0.1:8000/rendez-vous?creneau={slot_id}",
        description="Booking page of a slot in the web console, written in every FHIR Slot's comment.")
