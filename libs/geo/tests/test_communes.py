import random

from cpts_geo import communes, departements, distance_from, haversine_km, sas_radii


def test_communes_are_found_by_insee_code_postcode_and_name_prefix():
    directory = communes()
    assert len(directory) > 34_000
    venissieux = directory.get("69259")
    assert venissieux.name == "Vénissieux" and venissieux.departement == "69" and venissieux.postcodes == ("69200",)
    assert [c.insee for c in directory.by_postcode("69200")] == ["69259"]
    assert directory.search("venis")[0].insee == "69259"
    assert directory.search("6920")[0].insee == "69259"
    assert directory.get("2A004").departement == "2A"


def test_distances_are_great_circle_kilometres():
    lyon, paris = communes().get("69123"), communes().get("75056")
    assert 390 < haversine_km(lyon.lat, lyon.lon, paris.lat, paris.lon) < 395
    assert haversine_km(45.0, 4.0, 45.0, 4.0) == 0


def test_distances_from_one_point_are_the_great_circle_distances():
    rng = random.Random(3)
    for _ in range(2000):
        lat1, lon1, lat2, lon2 = rng.uniform(-60, 60), rng.uniform(-180, 180), rng.uniform(-60, 60), rng.uniform(-180, 180)
        assert abs(distance_from(lat1, lon1)(lat2, lon2) - haversine_km(lat1, lon1, lat2, lon2)) < 1e-9


def test_every_departement_has_a_sas_search_radius():
    radii = sas_radii()
    assert radii["69"].default_radius_km > 0 and radii["69"].enlargement_step_km > 0
    assert set(departements()) <= set(radii) | {"975", "977", "978"}


def test_communes_within_a_radius_are_found_by_great_circle_distance():
    lyon = communes().get("69123")
    near = {c.insee for c in communes().within(lyon.lat, lyon.lon, 8)}
    assert {"69123", "69266", "69259"} <= near
    assert "75056" not in near
