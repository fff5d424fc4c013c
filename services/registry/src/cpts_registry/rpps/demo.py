"""A generator of demo RPPS extracts in the exact national format, for a real territory.

The file has the 52 columns of `PS_LibreAcces_Personne_activite` (header names of the national file), a
trailing `|` on every line, and is UTF-8 (or Latin-1 on request, as older publications were). Its content is
invented but plausible: real communes of the chosen départements (weighted by population), French names,
professions in realistic shares, RPPS ids (11 digits with a Luhn key) and some ADELI ids (9 characters),
cabinets identified by SIRET, pharmacies and hospitals by FINESS, about 10 % of professionals with two
activities. Edge cases the importer must take are included: an ADELI audioprothésiste whose site has no
commune code (only a postcode), physicians with a site abroad (`99132`), and a professional whose second
activity comes back at the very end of the file. Same seed, same file.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cpts_geo.communes import Commune, communes
from cpts_geo.communes import departements as all_departements

from cpts_registry.rpps.extract import COLUMNS

FAMILY_NAMES = (
    "MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU", "LAURENT",
    "SIMON", "MICHEL", "LEFÈVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER", "GIRARD",
    "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT", "MULLER", "LEFEBVRE", "FAURE", "ANDRÉ",
    "MERCIER", "BLANC", "GUÉRIN", "BOYER", "GARNIER", "CHEVALIER", "FRANÇOIS", "LEGRAND", "GAUTHIER",
    "GARCIA", "PERRIN", "ROBIN", "CLÉMENT", "MORIN", "NICOLAS", "HENRY", "ROUSSEL", "MATHIEU", "GAUTIER",
    "MASSON", "MARCHAND", "DUVAL", "DENIS", "DUMONT", "MARIE", "LEMAIRE", "NOËL", "MEYER", "DUFOUR",
    "MEUNIER", "BRUN", "BLANCHARD", "GIRAUD", "JOLY", "RIVIÈRE", "LUCAS", "BRUNET", "GAILLARD", "BARBIER",
    "ARNAUD", "MARTINEZ", "GÉRARD", "ROCHE", "RENARD", "SCHMITT", "ROY", "LEROUX", "COLIN", "VIDAL", "CARON",
    "PICARD", "ROGER", "FABRE", "AUBERT", "LEMOINE", "RENAUD", "DUMAS", "LACROIX", "OLIVIER", "PHILIPPE",
    "BOURGEOIS", "PIERRE", "BENOÎT", "REY", "LECLERC", "PAYET", "ROLLAND", "LECLERCQ", "GUILLAUME", "LECOMTE",
    "LÓPEZ", "JEAN", "DUPUY", "GUILLOT", "HUBERT", "BERGER", "CARPENTIER", "SANCHEZ", "DUPUIS", "MOULIN",
    "LOUIS", "DESCHAMPS", "HUET", "VASSEUR", "PEREZ", "BOUCHER", "FLEURY", "ROYER", "KLEIN", "JACQUET",
    "ADAM", "PARIS", "POIRIER", "MARTY", "AUBRY", "GUYOT", "CARRÉ", "CHARLES", "RENAULT", "CHARPENTIER",
    "MÉNARD", "MAILLARD", "BARON", "BERTIN", "BAILLY", "HERVÉ", "SCHNEIDER", "FERNANDEZ", "LE GALL", "COLLET",
    "LÉGER", "BOUVIER", "JULIEN", "PRÉVOST", "MILLET", "PERROT", "DANIEL", "LE ROUX", "COUSIN", "GERMAIN",
    "BRETON", "BESSON", "LANGLOIS", "RÉMY", "LE GOFF", "PELLETIER", "LÉVÊQUE", "PERRIER", "LEBLANC", "BARRÉ",
    "LEBRUN", "MARCHAL", "WEBER", "MALLET", "HAMON", "BOULANGER", "JACOB", "MONNIER", "MICHAUD", "RODRIGUEZ",
    "GUICHARD", "GILLET", "ÉTIENNE", "GRONDIN", "POULAIN", "TESSIER", "CHEVALLIER", "COLLIN", "CHAUVIN",
    "DA SILVA", "BOUCHET", "GAY", "LEMAÎTRE", "BÉNARD", "MARÉCHAL", "HUMBERT", "REYNAUD", "ANTOINE", "HOARAU",
    "PERRET", "BARTHÉLEMY", "CORDIER", "PICHON", "LEJEUNE", "GILBERT", "LAMY", "DELAUNAY", "PASQUIER",
    "CARLIER", "LAPORTE",
)
GIVEN_NAMES_F = (
    "Marie", "Camille", "Léa", "Manon", "Chloé", "Sarah", "Emma", "Inès", "Julie", "Anaïs", "Pauline",
    "Laura", "Élodie", "Mathilde", "Claire", "Hélène", "Sophie", "Nathalie", "Isabelle", "Sandrine", "Céline",
    "Aurélie", "Émilie", "Stéphanie", "Valérie", "Christine", "Catherine", "Anne", "Agnès", "Françoise",
    "Brigitte", "Sylvie", "Juliette", "Louise", "Zoé", "Lucie", "Margaux", "Océane", "Marion", "Amélie",
    "Gaëlle", "Noémie", "Maëlle", "Béatrice", "Hélèna", "Léonie", "Clémence", "Justine", "Morgane", "Estelle",
)
GIVEN_NAMES_M = (
    "Jean", "Pierre", "Michel", "Philippe", "Alain", "Nicolas", "Christophe", "Stéphane", "Laurent",
    "Frédéric", "Sébastien", "Julien", "Thomas", "Antoine", "Maxime", "Alexandre", "Hugo", "Lucas", "Louis",
    "Théo", "Mathieu", "Guillaume", "François", "Jérôme", "Olivier", "Éric", "Patrick", "Thierry", "Bruno",
    "Didier", "Benoît", "Arnaud", "Cédric", "Damien", "Romain", "Vincent", "Adrien", "Baptiste", "Clément",
    "Quentin", "Raphaël", "Gaël", "Noël", "Loïc", "Jean-Pierre", "Jean-Marc", "Pierre-Yves", "Yannick",
    "Hervé", "Grégoire",
)
STREET_TYPES = (("R", "Rue", 45), ("AV", "Avenue", 18), ("BD", "Boulevard", 8), ("PL", "Place", 7),
                ("CHE", "Chemin", 8), ("ALL", "Allée", 5), ("IMP", "Impasse", 3), ("QUAI", "Quai", 2),
                ("RTE", "Route", 4))
STREET_NAMES = (
    "DE LA RÉPUBLIQUE", "VICTOR HUGO", "JEAN JAURÈS", "DU GÉNÉRAL DE GAULLE", "PASTEUR", "DE LA GARE",
    "DU MARCHÉ", "DES LILAS", "DE LA LIBÉRATION", "GAMBETTA", "DE LA MAIRIE", "DE L'ÉGLISE", "DES ÉCOLES",
    "DU 8 MAI 1945", "DU 11 NOVEMBRE", "DES TILLEULS", "DU STADE", "DES VIGNES", "FOCH", "CARNOT",
    "ÉMILE ZOLA", "JULES FERRY", "DE LA PAIX", "DU MOULIN", "DES PRÉS", "CLAUDE BERNARD", "LOUIS PASTEUR",
    "MARCEL PAGNOL", "DE LA FONTAINE", "SAINT-JEAN", "DES CHÊNES", "DU CHÂTEAU", "ANATOLE FRANCE",
    "PIERRE CURIE", "ALBERT CAMUS", "DES PLATANES", "DE BELLEVUE", "DU PRIEURÉ", "DES ROSIERS", "DE VERDUN",
)
GP_SHARE = 0.6
SPECIALTIES = (("SM04", "Cardiologie et maladies vasculaires"), ("SM15", "Dermatologie et vénéréologie"),
               ("SM22", "Gynécologie médicale"), ("SM26", "Gastro-entérologie et hépatologie"),
               ("SM36", "Oto-rhino-laryngologie"), ("SM38", "Ophtalmologie"), ("SM40", "Pédiatrie"),
               ("SM41", "Pneumologie"), ("SM42", "Psychiatrie"), ("SM46", "Rhumatologie"),
               ("SM02", "Anesthésie-réanimation"), ("SM34", "Neurologie"))


@dataclass(frozen=True)
class Profession:
    code: str
    label: str
    share: float
    liberal: float  # share practising as libéral (else salarié)
    adeli: float  # share with an ADELI id instead of an RPPS id
    authority: str
    doctor: bool = False  # civilité d'exercice "Docteur"


PROFESSIONS = (
    Profession("10", "Médecin", 0.25, 0.55, 0.0, "CNOM/CNOM/CNOM", doctor=True),
    Profession("60", "Infirmier", 0.29, 0.35, 0.0, "ONI/ONI/ONI"),
    Profession("70", "Masseur-Kinésithérapeute", 0.12, 0.85, 0.0, "CNOMK/CNOMK/CNOMK"),
    Profession("21", "Pharmacien", 0.10, 0.35, 0.0, "CNOP/CNOP/CNOP", doctor=True),
    Profession("40", "Chirurgien-Dentiste", 0.06, 0.9, 0.0, "CNOCD/CNOCD/CNOCD", doctor=True),
    Profession("50", "Sage-Femme", 0.04, 0.35, 0.0, "CNOSF/CNOSF/CNOSF"),
    Profession("91", "Orthophoniste", 0.045, 0.85, 0.5, "ARS/ARS/ARS"),
    Profession("80", "Pédicure-Podologue", 0.04, 0.95, 0.0, "ONPP/ONPP/ONPP"),
    Profession("92", "Orthoptiste", 0.02, 0.6, 0.6, "ARS/ARS/ARS"),
    Profession("26", "Audioprothésiste", 0.025, 0.3, 0.8, "ARS/ARS/ARS"),
)
FOREIGN = (("99132", "Royaume-Uni", "LONDRES", "SW1A 2AA"), ("99131", "Belgique", "BRUXELLES", "1000"),
           ("99140", "Suisse", "GENÈVE", "1201"))


def luhn_key(digits: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


@dataclass
class Site:
    technical_id: str
    former_id: str
    siret: str
    siren: str
    finess: str
    finess_ej: str
    name: str
    brand: str
    commune: Commune | None
    number: str
    index: str
    street_type: tuple[str, str]
    street: str
    phone: str
    email: str
    sector: tuple[str, str]
    capacity: int  # professionals it takes before a new one is opened
    members: int = 0
    foreign: tuple[str, str, str, str] | None = None
    no_commune_code: bool = False


@dataclass(frozen=True)
class DemoStats:
    rows: int
    professionals: int
    sites: int
    path: Path


class DemoGenerator:
    def __init__(self, departements: Sequence[str] = ("69",), seed: int = 1) -> None:
        self.rng = random.Random(seed)
        wanted = {d.strip().upper().zfill(2) for d in departements if d.strip()}
        directory = communes()
        items = [c for c in directory
                 if c.postcodes and c.lat is not None and (not wanted or c.departement in wanted)]
        if not items:
            raise ValueError(f"no commune with a postcode in the départements {sorted(wanted)}")
        items.sort(key=lambda c: c.insee)
        self.communes = items
        self.cumulative = list(itertools.accumulate(max(c.population, 1) for c in items))
        self.departement_names = {code: d.name for code, d in all_departements().items()}
        self.unique_postcode = {c.insee for c in items if len(directory.by_postcode(c.postcodes[0])) == 1}
        self.profession_weights = list(itertools.accumulate(p.share for p in PROFESSIONS))
        self.street_weights = list(itertools.accumulate(w for _, _, w in STREET_TYPES))
        self._rpps = self.rng.randrange(10**8)
        self._adeli = self.rng.randrange(10**3)
        self._siren = self.rng.randrange(10**8)
        self._finess = self.rng.randrange(10**5)
        self._technical = self.rng.randrange(10**6)
        self.site_count = 0
        self.cabinets: dict[str, list[Site]] = {}
        self.pharmacies: dict[str, list[Site]] = {}
        self.hospitals = self._hospitals()
        self.hospital_weights = list(itertools.accumulate(h.capacity for h in self.hospitals))

    # --- identifiers ---

    def rpps(self) -> str:
        # Successive multiples of a number prime to 10^9: distinct, scattered ids "1xxxxxxxxx" + Luhn key.
        self._rpps += 1
        base = f"1{(self._rpps * 387_420_489) % 10**9:09d}"
        return base + luhn_key(base)

    def adeli(self, departement: str, profession: str) -> str:
        self._adeli += 1
        return f"{departement[:2]}{profession[:2]}{self._adeli % 10000:04d}{self._adeli % 7}"

    def siret(self) -> tuple[str, str]:
        self._siren += 1
        base = f"{(self._siren * 48_271) % 10**8:08d}"
        siren = base + luhn_key(base)
        nic = f"{self.rng.randrange(1, 100):03d}1"
        return siren + nic + luhn_key(siren + nic), siren

    def finess(self, departement: str, category: str) -> str:
        self._finess += 1
        return f"{departement[:2]}{category}{(self._finess * 7_919) % 10**6:06d}"

    def technical_id(self, prefix: str) -> str:
        self._technical += 1
        return f"{prefix}{self._technical:08d}"

    # --- places ---

    def commune(self) -> Commune:
        return self.communes[bisect.bisect(self.cumulative, self.rng.random() * self.cumulative[-1])]

    def phone(self, commune: Commune | None) -> str:
        region = {"11": "01", "24": "02", "28": "02", "52": "02", "53": "02", "27": "03", "32": "03",
                  "44": "03", "75": "05", "76": "05"}.get(commune.region if commune else "", "04")
        return region + f"{self.rng.randrange(10**8):08d}"

    def _address(self) -> tuple[str, str, tuple[str, str], str]:
        rng = self.rng
        weights = self.street_weights
        code, label, _ = STREET_TYPES[bisect.bisect(weights, rng.random() * weights[-1])]
        number = str(rng.randrange(1, 180)) if rng.random() < 0.93 else ""
        index = "B" if number and rng.random() < 0.04 else ""
        return number, index, (code, label), rng.choice(STREET_NAMES)

    def _site(self, commune: Commune | None, kind: str, name: str, capacity: int) -> Site:
        number, index, street_type, street = self._address()
        departement = commune.departement if commune else "99"
        if kind in ("cabinet", "foreign"):
            siret, siren = self.siret()
            finess = finess_ej = ""
            technical = self.technical_id("C")
            former = "3" + siret
            sector = ("SA07", "Cabinet individuel") if capacity == 1 else ("SA08", "Cabinet de groupe")
        elif kind == "pharmacy":
            siret, siren = self.siret()
            finess = self.finess(departement, "2")
            finess_ej = self.finess(departement, "2")
            technical = self.technical_id("R")
            former = "1" + finess
            sector = ("SA33", "Officine")
        else:
            siret, siren = "", ""
            finess = self.finess(departement, "0")
            finess_ej = self.finess(departement, "0")
            technical = self.technical_id("R")
            former = "1" + finess
            sector = ("SA01", "Etablissement public de santé") if name.startswith("CENTRE") else (
                "SA02", "Etablissement privé")
        email = f"contact{self.site_count}@exemple.fr" if self.rng.random() < 0.15 else ""
        self.site_count += 1
        return Site(technical_id=technical, former_id=former, siret=siret, siren=siren, finess=finess,
                    finess_ej=finess_ej, name=name, brand="", commune=commune, number=number, index=index,
                    street_type=street_type, street=street, phone=self.phone(commune), email=email,
                    sector=sector, capacity=capacity)

    def _hospitals(self) -> list[Site]:
        by_departement: dict[str, list[Commune]] = {}
        for c in self.communes:
            by_departement.setdefault(c.departement, []).append(c)
        hospitals = []
        for departement in sorted(by_departement):
            biggest = sorted(by_departement[departement], key=lambda c: (-c.population, c.insee))
            population = sum(c.population for c in biggest)
            for i, commune in enumerate(biggest[:max(2, min(12, population // 60_000))]):
                kind = "CENTRE HOSPITALIER" if i % 3 == 0 else ("CLINIQUE" if i % 3 == 1 else "HÔPITAL PRIVÉ")
                site = self._site(commune, "hospital", f"{kind} {commune.name.upper()}",
                                  capacity=max(1, commune.population // 1000))
                hospitals.append(site)
        return hospitals

    def cabinet(self, commune: Commune, profession: Profession) -> Site:
        pool = self.cabinets.setdefault(commune.insee, [])
        open_ = [s for s in pool[-6:] if s.members < s.capacity]
        if open_ and self.rng.random() < 0.7:
            site = self.rng.choice(open_)
        else:
            capacity = 1 if self.rng.random() < 0.45 else self.rng.randrange(2, 7)
            name = "" if capacity == 1 else self.rng.choice(
                ("MAISON DE SANTÉ", "CABINET MÉDICAL", "CENTRE PARAMÉDICAL", "CABINET"),
            ) + f" {commune.name.upper()}"
            site = self._site(commune, "cabinet", name, capacity)
            pool.append(site)
        site.members += 1
        return site

    def pharmacy(self, commune: Commune) -> Site:
        pool = self.pharmacies.setdefault(commune.insee, [])
        if pool and self.rng.random() < 0.6:
            return self.rng.choice(pool)
        site = self._site(commune, "pharmacy", f"PHARMACIE {self.rng.choice(STREET_NAMES)}", 4)
        pool.append(site)
        return site

    def hospital(self) -> Site:
        weights = self.hospital_weights
        return self.hospitals[bisect.bisect(weights, self.rng.random() * weights[-1])]

    def foreign_site(self) -> Site:
        code, country, city, postcode = self.rng.choice(FOREIGN)
        site = self._site(None, "foreign", f"PRIVATE PRACTICE {city}", 1)
        site.foreign = (code, country, city, postcode)
        return site

    # --- professionals ---

    def activity_site(self, profession: Profession, liberal: bool, commune: Commune) -> Site:
        if profession.code == "21":
            return self.pharmacy(commune) if liberal or self.rng.random() < 0.5 else self.hospital()
        if profession.code == "26":
            return self.cabinet(commune, profession) if liberal else self.pharmacy(commune)
        return self.cabinet(commune, profession) if liberal else self.hospital()

    def professional_rows(self, force: str | None = None) -> list[list[str]]:
        rng = self.rng
        if force == "adeli-no-commune":
            profession = next(p for p in PROFESSIONS if p.code == "26")
        elif force in ("foreign-second", "foreign-only"):
            profession = PROFESSIONS[0]
        else:
            profession = PROFESSIONS[bisect.bisect(self.profession_weights,
                                                   rng.random() * self.profession_weights[-1])]
        woman = rng.random() < (0.5 if profession.code == "10" else 0.75)
        family = rng.choice(FAMILY_NAMES)
        given = rng.choice(GIVEN_NAMES_F if woman else GIVEN_NAMES_M)
        home = self.commune()
        if force == "adeli-no-commune":
            candidates = [c for c in self.communes if c.insee in self.unique_postcode] or self.communes
            home = candidates[rng.randrange(len(candidates))]
        if force == "adeli-no-commune" or rng.random() < profession.adeli:
            id_type = "0"
            pp_id = self.adeli("01" if force == "adeli-no-commune" else home.departement, profession.code)
        else:
            id_type, pp_id = "8", self.rpps()
        liberal = rng.random() < profession.liberal or force is not None
        if profession.code == "10":
            skill = ("SM54", "Médecine générale") if rng.random() < GP_SHARE else rng.choice(SPECIALTIES)
        else:
            skill = ("", "")
        person = (id_type, pp_id, woman, family, given, profession, skill)
        if force == "foreign-only":
            return [self.row(person, self.foreign_site(), "L")]
        first = self.activity_site(profession, liberal, home)
        rows = [self.row(person, first, "L" if liberal else "S",
                         no_commune_code=force == "adeli-no-commune")]
        if force == "foreign-second":
            rows.append(self.row(person, self.foreign_site(), "L"))
        elif rng.random() < 0.10:
            second_liberal = not liberal if rng.random() < 0.5 else liberal
            other = self.commune() if rng.random() < 0.5 else home
            second = self.activity_site(profession, second_liberal, other)
            if second is not first:
                rows.append(self.row(person, second, "L" if second_liberal else "S"))
        return rows

    def row(self, person, site: Site, mode: str, *, no_commune_code: bool = False) -> list[str]:
        id_type, pp_id, woman, family, given, profession, skill = person
        commune = site.commune
        if site.foreign:
            country_code, country, city, postcode = site.foreign
            commune_code, commune_label, departement, departement_label = "", city, "", ""
            cedex = f"{postcode} {city}"
        else:
            assert commune is not None
            country_code = country = ""
            postcode = commune.postcodes[0]
            commune_code = "" if no_commune_code else commune.insee
            commune_label = commune.name
            departement = commune.departement
            departement_label = self.departement_names.get(departement, "")
            cedex = f"{postcode} {commune.name.upper()}"
        civility_code, civility_label = ("MME", "Madame") if woman else ("M", "Monsieur")
        practice_code, practice_label = ("DR", "Docteur") if profession.doctor else ("", "")
        skill_type = ("S", "Spécialité ordinale") if skill[0] else ("", "")
        mode_label = {"L": "Libéral", "S": "Salarié", "B": "Bénévole"}[mode]
        pharmacist_section = ("", "")
        if profession.code == "21":
            pharmacist_section = ("A", "Pharmacien titulaire d'officine") if mode == "L" else (
                ("D", "Pharmacien adjoint") if site.sector[0] == "SA33" else ("H", "Pharmacien hospitalier"))
        fields = [
            id_type, pp_id, id_type + pp_id, practice_code, practice_label, civility_code, civility_label,
            family, given, profession.code, profession.label, "C", "Civil", skill_type[0], skill_type[1],
            skill[0], skill[1], mode, mode_label, site.siret, site.siren, site.finess, site.finess_ej,
            site.technical_id, site.name, site.brand, "", "", site.number, site.index, site.street_type[0],
            site.street_type[1], site.street, "", cedex, postcode, commune_code, commune_label, country_code,
            country, site.phone, "", "", site.email, departement, departement_label, site.former_id,
            profession.authority, site.sector[0], site.sector[1], *pharmacist_section,
        ]
        assert len(fields) == len(COLUMNS)
        return fields

    def write(self, out: str | Path, rows: int, *, encoding: str = "utf-8") -> DemoStats:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        forced = {1: "adeli-no-commune", 3: "foreign-second", 5: "foreign-only"} if rows >= 12 else {}
        written = professionals = 0
        late: list[str] | None = None
        late_index = 7 if rows >= 12 else -1
        with out.open("w", encoding=encoding, newline="\n", buffering=1 << 20) as f:
            f.write("|".join(COLUMNS) + "|\n")
            while written < rows - (1 if late else 0):
                batch = self.professional_rows(forced.get(professionals))
                if professionals == late_index and len(batch) == 1:
                    # Give this one a second activity, listed again at the end of the file.
                    person_rows = self.professional_rows()
                    extra = batch[0][:]
                    extra[19:] = person_rows[0][19:]
                    extra[17], extra[18] = "S", "Salarié"
                    late = extra
                elif professionals == late_index:
                    late_index += 1
                professionals += 1
                for fields in batch[:rows - written - (1 if late else 0)]:
                    f.write("|".join(fields) + "|\n")
                    written += 1
            if late:
                f.write("|".join(late) + "|\n")
                written += 1
        sites = self.site_count
        return DemoStats(rows=written, professionals=professionals, sites=sites, path=out)


def generate_demo(out: str | Path, *, rows: int = 2000, departements: Sequence[str] = ("69",), seed: int = 1,
                  encoding: str = "utf-8") -> DemoStats:
    """Write a demo extract of `rows` data lines for the départements (all of France when empty)."""
    if rows < 1:
        raise ValueError("rows must be at least 1")
    return DemoGenerator(departements, seed).write(out, rows, encoding=encoding)
