"""French communes, départements and SAS search radii (reference data shipped in `data/`)."""

from cpts_geo.communes import (
    Commune,
    Departement,
    SasRadius,
    communes,
    departements,
    distance_from,
    haversine_km,
    load_all,
    sas_radii,
)

__all__ = ["Commune", "Departement", "SasRadius", "communes", "departements", "distance_from", "haversine_km",
           "load_all", "sas_radii"]
