"""Realistic demo data: Dutch and British customers with contact points, history, notes and tickets.

Faker is far too slow to call per row, so it only fills small pools of names once; rows are then
combined from those pools with one seeded random.Random and inserted in bulk, a batch of customers
(with everything that belongs to them) per transaction. Ids are assigned here, after the current
maximum of each table, so seeding twice adds more; run it while nothing else inserts customers.

Email addresses use the reserved .example domain so a demo can never mail a real person; phone
numbers are valid numbers in real ranges because the console has to normalise and match them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import unicodedata
import uuid
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from itertools import accumulate
from string import Formatter
from typing import Any, Generic, TypeVar

from sqlalchemy import func, insert, select

from console.customers import normalize_email, normalize_phone
from console.db import Database
from console.errors import InvalidInput
from console.models import (
    OPEN_TICKET_STATUSES,
    Address,
    Agent,
    ContactPoint,
    Contract,
    Conversation,
    Customer,
    Note,
    Queue,
    Role,
    SearchTerm,
    Ticket,
    TicketStatus,
)
from console.search import customer_terms

Row = dict[str, Any]
T = TypeVar("T")


class _Weighted(Generic[T]):
    """Values with relative weights, drawn by bisecting the running total (random.choices is slow)."""

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        self.values = [value for value, _ in pairs]
        self.cumulative = list(accumulate(weight for _, weight in pairs))
        self.total = self.cumulative[-1]


# The demo contact center's own numbers and mailboxes: where customers call and write to.
SERVICE_NUMBERS = {"nl": ("+31 20 808 4400", "+31 30 799 1200"), "en": ("+44 20 3880 1500",)}
SERVICE_MAILBOXES = {"nl": "klantenservice@demo.example", "en": "customerservice@demo.example"}

BATCH = 5_000  # customers generated, with all that belongs to them, per transaction
CHUNK = 10_000  # rows per INSERT statement
HISTORY_DAYS = 730
DAY = 86_400.0

DISPOSITIONS = _Weighted([("resolved", 40), ("information given", 25), ("callback agreed", 12), ("sale", 10),
                          ("complaint", 8), ("escalated", 5)])
CONVERSATION_COUNTS = _Weighted(list(enumerate((10, 15, 18, 16, 13, 10, 8, 6, 4))))  # about 3.2 per customer
NOTE_COUNTS = _Weighted(list(enumerate((45, 30, 15, 7, 3))))
TICKET_COUNTS = _Weighted(list(enumerate((72, 22, 5, 1))))
PHONE_COUNTS = _Weighted(list(enumerate((8, 55, 32, 5))))
TICKET_STATUSES = _Weighted([(TicketStatus.NEW, 4), (TicketStatus.OPEN, 9), (TicketStatus.PENDING, 6),
                             (TicketStatus.SOLVED, 38), (TicketStatus.CLOSED, 43)])
PRIORITIES = _Weighted([("low", 20), ("normal", 55), ("high", 18), ("urgent", 7)])
COMPANY_SIZES = _Weighted([(1, 30), (2, 22), (3, 16), (4, 11), (5, 8), (6, 6), (8, 4), (12, 3)])
OFFICE_HOURS_UTC = _Weighted([(7, 4), (8, 9), (9, 10), (10, 10), (11, 7), (12, 8), (13, 9), (14, 9), (15, 8),
                              (16, 6), (17, 3)])

# Ranges checked against libphonenumber: every number drawn from them is valid.
NL_AREAS_2 = ("10", "13", "15", "20", "23", "24", "26", "30", "33", "35", "38", "40", "43", "45", "50", "53",
              "55", "58", "70", "71", "72", "73", "74", "75", "76", "77", "78", "79")
NL_AREAS_3 = ("172", "174", "180", "229", "251", "252", "297", "313", "318", "320", "341", "413", "416", "418",
              "475", "492", "495", "511", "512", "546", "561", "591", "596", "597")
GB_AREAS = {"20": "378", "113": "2345", "114": "2345", "116": "234", "117": "234", "121": "234567",
            "131": "2345678", "141": "2345678", "161": "2345678"}
GB_AREA_CODES = tuple(GB_AREAS)
UK_CITIES = ("London", "Manchester", "Leeds", "Bristol", "Birmingham", "Glasgow", "Edinburgh", "Sheffield",
             "Leicester", "Cambridge", "Oxford", "York", "Brighton", "Norwich", "Cardiff", "Belfast")

PERSONAL_DOMAINS = {
    "nl": ("ziggo.example", "kpnmail.example", "hotmail.example", "gmail.example", "outlook.example",
           "xs4all.example", "planet.example"),
    "en": ("gmail.example", "btinternet.example", "outlook.example", "yahoo.example", "sky.example",
           "virginmedia.example"),
}
SECTORS = {
    "nl": ("Installatietechniek", "Logistiek", "Bouw", "Advies", "Accountants", "Transport", "Schilders",
           "Automatisering", "Groothandel", "Zorg", "Makelaardij", "Catering", "Metaal", "Tuinen", "Media"),
    "en": ("Logistics", "Engineering", "Consulting", "Building Services", "Accountants", "Haulage",
           "Electrical", "Software", "Wholesale", "Care", "Estates", "Catering", "Joinery", "Media", "Print"),
}
LEGAL_FORMS = {"nl": (" B.V.", " B.V.", " V.O.F.", "", " Groep"), "en": (" Ltd", " Ltd", " PLC", " LLP", "")}
NOT_IN_DOMAIN = {"bv", "b.v", "nv", "vof", "v.o.f", "ltd", "plc", "llp", "and", "en", "groep", "group"}

WEEKDAYS = {
    "nl": ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
}
MONTHS = {
    "nl": ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
           "november", "december"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}
PLANS = ("Basis", "Plus", "Zakelijk", "Premium", "Business", "Starter")

NOTES = {
    "nl": (
        "Klant belde over factuur {ref}; uitgelegd dat het bedrag van € {amount} klopt.",
        "Terugbelverzoek: graag {day} na {hour}:00 bellen.",
        "Wil overstappen naar het {plan}-pakket, offerte gemaild.",
        "Klacht over levering, excuses aangeboden en € {small} tegoed toegezegd.",
        "Adreswijziging doorgegeven per {date}.",
        "Klant tevreden over de oplossing, ticket mag dicht.",
        "Betalingsregeling afgesproken: {n} termijnen.",
        "Storing sinds {day}, monteur ingepland.",
        "Contactpersoon voor facturen is {first} van de administratie.",
        "Niet bellen voor 10:00, werkt in ploegendienst.",
        "Interesse in {n} extra licenties, volgt na overleg met {first}.",
        "Wachtwoord gereset, klant kan weer inloggen.",
        "Opzegging besproken; klant blijft na {pct}% korting.",
        "Pakket kwam retour, nieuw afleveradres gevraagd.",
        "Machtiging automatische incasso ontvangen.",
        "Klant was boos over de wachttijd; doorverbonden met teamleider.",
        "Vraag over btw op factuur {ref} doorgezet naar finance.",
        "Wil liefst per e-mail contact.",
        "Contract loopt af in {month}, verlenging bespreken.",
        "Vaste contactpersoon is {first}, graag via die persoon laten lopen.",
    ),
    "en": (
        "Called about invoice {ref}; explained that the amount of £ {amount} is correct.",
        "Callback requested: {day} after {hour}:00 please.",
        "Wants to move to the {plan} plan, quote sent by email.",
        "Delivery complaint, apologised and offered £ {small} credit.",
        "New address from {date} onwards.",
        "Happy with the fix, ticket can be closed.",
        "Payment plan agreed: {n} instalments.",
        "Outage since {day}, engineer booked.",
        "Invoices go to {first} in accounts.",
        "Do not call before 10am, works shifts.",
        "Interested in {n} extra licences, will confirm after talking to {first}.",
        "Password reset, customer can log in again.",
        "Talked about cancelling; stays with a {pct}% discount.",
        "Parcel returned to sender, asked for a new delivery address.",
        "Direct debit mandate received.",
        "Upset about the waiting time; passed to the team lead.",
        "VAT question on invoice {ref} forwarded to finance.",
        "Prefers email over phone.",
        "Contract ends in {month}, discuss renewal.",
        "{first} is the usual contact, please go through them.",
    ),
}
TICKET_SUBJECTS = {
    "nl": (
        "Factuur {ref} klopt niet", "Levering vertraagd", "Storing internetverbinding", "Verzoek om terugbetaling",
        "Wijziging contractgegevens", "Vraag over btw-tarief", "Inloggen lukt niet", "Klacht over monteur",
        "Offerte {n} extra licenties", "Product defect bij aflevering", "Adreswijziging", "Opzegging contract",
        "Dubbele afschrijving in {month}", "Monteur niet verschenen", "Aanvraag nieuwe aansluiting",
    ),
    "en": (
        "Invoice {ref} is wrong", "Delivery delayed", "Broadband outage", "Refund request",
        "Change of contract details", "Question about VAT rate", "Cannot log in", "Complaint about engineer",
        "Quote for {n} extra licences", "Product damaged on arrival", "Change of address", "Contract cancellation",
        "Charged twice in {month}", "Engineer did not turn up", "New connection request",
    ),
}
TICKET_DETAILS = {
    "nl": (
        "Klant heeft het al twee keer eerder gemeld.", "Graag voor {day} terugkoppelen.",
        "Foto's zijn per e-mail ontvangen.", "Bedrag in kwestie: € {amount}.", "Referentie {ref}.",
        "Klant vraagt om een schriftelijke bevestiging.", "Speelt sinds begin {month}.",
        "Doorgezet naar de tweede lijn.", "Wacht op reactie van de leverancier.", "Contactpersoon: {first}.",
    ),
    "en": (
        "Customer has reported this twice before.", "Please get back to them before {day}.",
        "Photos received by email.", "Amount in question: £ {amount}.", "Reference {ref}.",
        "Customer asks for written confirmation.", "Going on since early {month}.", "Passed to second line.",
        "Waiting for the supplier to respond.", "Contact: {first}.",
    ),
}


@dataclass
class _Company:
    name: str
    domain: str
    country: str
    members: list[int]
    switchboard: str | None = None  # national significant number shared by some members
    on_switchboard: set[int] = field(default_factory=set)


@dataclass
class _Batch:
    customers: list[Row] = field(default_factory=list)
    contact_points: list[Row] = field(default_factory=list)
    conversations: list[Row] = field(default_factory=list)
    notes: list[Row] = field(default_factory=list)
    tickets: list[Row] = field(default_factory=list)
    search_terms: list[Row] = field(default_factory=list)
    addresses: list[Row] = field(default_factory=list)
    contracts: list[Row] = field(default_factory=list)

    def tables(self) -> list[tuple[type[Any], list[Row]]]:
        return [(Customer, self.customers), (ContactPoint, self.contact_points),
                (Conversation, self.conversations), (Note, self.notes), (Ticket, self.tickets),
                (SearchTerm, self.search_terms), (Address, self.addresses), (Contract, self.contracts)]


@dataclass(frozen=True)
class _Held:
    """What notes and tickets need to know of a generated conversation (times as POSIX seconds)."""

    id: int
    created: float
    closed: float | None
    agent_id: int | None


class _Dice:
    """The few random draws the generator makes a million times, faster than random.Random's own."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.random = rng.random

    def pick(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]

    def weighted(self, table: _Weighted[T]) -> T:
        return table.values[bisect_right(table.cumulative, self.random() * table.total)]

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def below(self, limit: int) -> int:
        return int(self.random() * limit)

    def digits(self, count: int) -> str:
        return str(int(self.random() * 10**count)).zfill(count)


def _fold(text: str) -> str:
    """Lower-case ASCII letters and digits only, for email addresses and domains."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text.lower() if c.isalnum())


def _pool(make: Callable[[], str], draws: int) -> list[str]:
    return sorted({make() for _ in range(draws)})


def _at(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


class _Pools:
    """Names and places drawn from Faker once; everything per row is combined from these."""

    def __init__(self, rng: random.Random) -> None:
        from faker import Faker

        self.first: dict[str, list[str]] = {}
        self.last: dict[str, list[str]] = {}
        self.companies: dict[str, list[str]] = {}
        self.cities: dict[str, list[str]] = {"en": list(UK_CITIES)}
        self.streets: dict[str, list[str]] = {}
        for language, locale in (("nl", "nl_NL"), ("en", "en_GB")):
            fake: Any = Faker(locale)
            fake.seed_instance(rng.randrange(2**32))
            self.first[language] = _pool(fake.first_name, 1200)
            self.last[language] = _pool(fake.last_name, 1500)
            self.companies[language] = _pool(fake.company, 600)
            self.streets[language] = _pool(fake.street_name, 400)
            if language == "nl":
                self.cities["nl"] = _pool(fake.city, 300)
        self._folded: dict[str, str] = {}

    def fold(self, text: str) -> str:
        folded = self._folded.get(text)
        if folded is None:
            folded = self._folded[text] = _fold(text)
        return folded


class _Phones:
    """Valid phone numbers, written the many ways people write them, unique within one seed run.

    National forms are only used for numbers of the seeding region; the others are written
    internationally, so that normalize_phone(value, region) reads every one of them right.
    A number's digits without country code (its national significant number) identify it here.
    """

    def __init__(self, dice: _Dice, region: str) -> None:
        self.dice = dice
        self.region = region.upper()
        self.used: set[str] = set()
        self.trusted: dict[tuple[str, int], bool] = {}

    def new(self, country: str, mobile: bool) -> str:
        """A fresh national significant number (the digits after the country code)."""
        dice = self.dice
        while True:
            if country == "NL" and mobile:
                nsn = "6" + dice.pick("123458") + dice.digits(7)
            elif country == "NL":
                area = dice.pick(NL_AREAS_2) if dice.random() < 0.7 else dice.pick(NL_AREAS_3)
                nsn = area + dice.pick("23456789") + dice.digits(8 - len(area))
            elif mobile:
                nsn = "7" + dice.pick("4578") + dice.digits(8)
            else:
                area = dice.pick(GB_AREA_CODES)
                nsn = area + dice.pick(GB_AREAS[area]) + dice.digits(9 - len(area))
            key = country + nsn
            if key not in self.used and not nsn.startswith("7700"):  # 07700: UK numbers for fiction
                self.used.add(key)
                return nsn

    def write(self, country: str, nsn: str) -> tuple[str, str]:
        """(the number as a person would write it, its E.164 form)."""
        shape, styles = self._styles(country, nsn)
        index = self.dice.below(len(styles))
        value, e164 = styles[index], f"+{'31' if country == 'NL' else '44'}{nsn}"
        trusted = self.trusted.get((shape, index))
        if trusted is None:
            # Each way of writing is checked once against the console's own normalisation (calling
            # it per number would be a third of the generating time); the numbers all come from
            # valid ranges, so a way of writing that reads right once reads right for all of them.
            trusted = self.trusted[shape, index] = normalize_phone(value, self.region) == e164
        return (value if trusted else e164), e164

    def _styles(self, country: str, nsn: str) -> tuple[str, list[str]]:
        national = country == self.region
        if country == "NL" and nsn[0] == "6":
            d = nsn[1:]
            styles = [f"+31 6 {d}", f"+31 6 {d[:4]} {d[4:]}", f"+31 (0)6 {d[:4]} {d[4:]}", f"+316{d}"]
            if national:
                styles += [f"06-{d}", f"06-{d[:4]} {d[4:]}", f"06 {d[:2]} {d[2:4]} {d[4:6]} {d[6:]}", f"06{d}",
                           f"06 {d[:4]} {d[4:]}", f"0031 6 {d}", f"06-{d[:2]} {d[2:4]} {d[4:6]} {d[6:]}"] * 2
            return "nl mobile", styles
        if country == "NL":
            cut = 2 if nsn[:2] in NL_AREAS_2 else 3
            a, s = nsn[:cut], nsn[cut:]
            styles = [f"+31 {a} {s}", f"+31 (0){a} {s[:3]} {s[3:]}", f"+31{a}{s}"]
            if national and cut == 2:
                styles += [f"0{a}-{s}", f"0{a} {s[:3]} {s[3:]}", f"(0{a}) {s[:3]} {s[3:5]} {s[5:]}",
                           f"0{a}-{s[:3]} {s[3:5]} {s[5:]}"] * 2
            elif national:
                styles += [f"0{a}-{s}", f"0{a} {s[:2]} {s[2:4]} {s[4:]}", f"(0{a}) {s}"] * 2
            return f"nl area {cut}", styles
        if nsn[0] == "7":
            head, tail = nsn[:4], nsn[4:]
            styles = [f"+44 {head} {tail}", f"+44 (0){head} {tail}", f"+44{nsn}"]
            if national:
                styles += [f"0{head} {tail}", f"0{nsn}", f"0044 {head} {tail}"] * 2
            return "gb mobile", styles
        cut = 2 if nsn.startswith("20") else 3
        a, s = nsn[:cut], nsn[cut:]
        spaced = f"{s[:4]} {s[4:]}" if cut == 2 else f"{s[:3]} {s[3:]}"
        styles = [f"+44 {a} {spaced}", f"+44 (0){a} {spaced}", f"+44{nsn}"]
        if national:
            styles += [f"0{a} {spaced}", f"(0{a}) {spaced}", f"0{nsn}"] * 2
        return f"gb area {cut}", styles


class _Texts:
    """Note, ticket and mail texts: templates whose {fields} are filled with plausible values."""

    def __init__(self, dice: _Dice, pools: _Pools) -> None:
        self.dice = dice
        self.pools = pools
        self.parsed: dict[str, list[str]] = {}
        for templates in (*NOTES.values(), *TICKET_SUBJECTS.values(), *TICKET_DETAILS.values()):
            for template in templates:
                self.parsed[template] = [name for _, name, _, _ in Formatter().parse(template) if name]

    def fill(self, template: str, language: str, when: float) -> str:
        names = self.parsed[template]
        if not names:
            return template
        return template.format(**{name: self._value(name, language, when) for name in names})

    def _value(self, name: str, language: str, when: float) -> object:
        dice = self.dice
        if name == "ref":
            return f"{datetime.fromtimestamp(when, UTC).year}-{1 + dice.below(99_998):05d}"
        if name == "amount":
            amount = f"{dice.uniform(20, 2500):.2f}"
            return amount.replace(".", ",") if language == "nl" else amount
        if name == "small":
            return dice.pick((10, 15, 25, 50))
        if name == "day":
            return dice.pick(WEEKDAYS[language])
        if name == "hour":
            return 9 + dice.below(8)
        if name == "date":
            later = datetime.fromtimestamp(when + DAY * (1 + dice.below(21)), UTC)
            separator = "-" if language == "nl" else "/"
            return f"{later.day:02d}{separator}{later.month:02d}{separator}{later.year}"
        if name == "plan":
            return dice.pick(PLANS)
        if name == "n":
            return 2 + dice.below(11)
        if name == "first":
            return dice.pick(self.pools.first[language])
        if name == "pct":
            return dice.pick((10, 15, 20, 25))
        return dice.pick(MONTHS[language])


class _Generator:
    """Builds the rows of one seed run; `batch(start, stop)` makes customers start..stop-1."""

    def __init__(self, rng: random.Random, *, customers: int, region: str, agents: Sequence[tuple[int, Role]],
                 queues: Sequence[int], next_ids: dict[type[Any], int]) -> None:
        self.dice = dice = _Dice(rng)
        self.now = time.time()
        self.pools = _Pools(rng)
        self.phones = _Phones(dice, region)
        self.texts = _Texts(dice, self.pools)
        self.emails: set[str] = set()
        self.owners = [agent_id for agent_id, role in agents if role in (Role.AGENT, Role.SUPERVISOR)]
        self.handlers = self.owners or [agent_id for agent_id, _ in agents]
        self.queues = list(queues)
        self.ids = dict(next_ids)
        self.run = uuid.uuid4().hex[:12]  # keeps external ids unique when seeding again
        self.languages = ["nl" if dice.random() < 0.7 else "en" for _ in range(customers)]
        self.company_of: dict[int, _Company] = {}
        self._plan_companies(customers)

    def _id(self, model: type[Any]) -> int:
        value = self.ids[model]
        self.ids[model] = value + 1
        return value

    def _handler(self) -> int | None:
        return self.dice.pick(self.handlers) if self.handlers else None

    # -- companies -------------------------------------------------------------------------------

    def _plan_companies(self, customers: int) -> None:
        """About half the customers work at a company; colleagues share it, some a switchboard."""
        dice = self.dice
        employed = list(range(customers))
        dice.rng.shuffle(employed)
        by_language: dict[str, list[int]] = {"nl": [], "en": []}
        for index in employed[: customers // 2]:
            by_language[self.languages[index]].append(index)
        names: set[str] = set()
        needs_switchboard = True  # so that even a tiny seed has a number shared by colleagues
        for language, members in by_language.items():
            position = 0
            while position < len(members):
                size = dice.weighted(COMPANY_SIZES)
                if needs_switchboard:
                    size = max(size, 3)
                company = self._company(language, members[position:position + size], names)
                position += size
                if len(company.members) >= 2 and (needs_switchboard or dice.random() < 0.2):
                    company.switchboard = self.phones.new(company.country, mobile=False)
                    sharing = min(len(company.members), 2 + dice.below(3))
                    company.on_switchboard = set(dice.rng.sample(company.members, sharing))
                    needs_switchboard = False
                for index in company.members:
                    self.company_of[index] = company

    def _company(self, language: str, members: list[int], taken: set[str]) -> _Company:
        dice, pools = self.dice, self.pools
        for _ in range(20):
            roll = dice.random()
            if roll < 0.35:
                name = dice.pick(pools.companies[language])
            elif roll < 0.75:
                name = f"{dice.pick(pools.last[language])} {dice.pick(SECTORS[language])}"
                name = name[0].upper() + name[1:] + dice.pick(LEGAL_FORMS[language])
            else:
                name = f"{dice.pick(SECTORS[language])} {dice.pick(pools.cities[language])}"
                name += dice.pick(LEGAL_FORMS[language])
            if name not in taken:
                break
        taken.add(name)
        words = name.replace("&", " ").replace(",", " ").split()
        words = [w for w in words if w.strip(".").lower() not in NOT_IN_DOMAIN]
        domain = "".join(pools.fold(w) for w in words)[:40] or "company"
        return _Company(name, f"{domain}.example", "NL" if language == "nl" else "GB", members)

    # -- time ------------------------------------------------------------------------------------

    def _moment(self, start: float, end: float) -> float:
        """A time between start and end, during office hours on a weekday when that fits."""
        dice = self.dice
        moment = start + dice.random() * max(end - start, 0.0)
        day = moment // DAY
        weekday = (int(day) + 3) % 7  # 1 January 1970 was a Thursday
        if weekday >= 5 and dice.random() < 0.85:
            day += dice.below(5) - weekday
        office = day * DAY + dice.weighted(OFFICE_HOURS_UTC) * 3600 + dice.random() * 3600
        return office if start <= office <= end else moment

    # -- rows ------------------------------------------------------------------------------------

    def batch(self, start: int, stop: int) -> _Batch:
        out = _Batch()
        for index in range(start, stop):
            self._customer(index, out)
        return out

    def _customer(self, index: int, out: _Batch) -> None:
        dice, pools = self.dice, self.pools
        language = self.languages[index]
        first, last = dice.pick(pools.first[language]), dice.pick(pools.last[language])
        company = self.company_of.get(index)
        roll = dice.random()
        if roll < 0.1:
            tier, euros = "A", min(max(dice.rng.lognormvariate(11.0, 0.8), 15_000.0), 900_000.0)
        elif roll < 0.4:
            tier, euros = "B", dice.uniform(2_000, 15_000)
        else:
            tier, euros = "C", dice.uniform(50, 1_500)
        owner = None
        if self.owners and (tier != "C" or dice.random() < 0.04):
            owner = dice.pick(self.owners)
        created = self._moment(self.now - 6 * 365 * DAY, self.now - 60 * DAY)
        customer_id = self._id(Customer)
        out.customers.append({
            "id": customer_id, "name": f"{first} {last}"[:200], "company": company.name if company else None,
            "tier": tier, "lifetime_value": Decimal(int(euros * 100)).scaleb(-2), "owner_id": owner,
            "language": language, "created_at": _at(created),
            "updated_at": _at(created + (self.now - created) * dice.random()),
            "segment": ("Enterprise" if tier == "A" else "SMB") if company else "Consumer",
            "consent_email": dice.random() < 0.45, "consent_phone": dice.random() < 0.2,
        })
        self._address(customer_id, language, out)
        if company is not None and tier != "C" and dice.random() < 0.6:
            self._contract(customer_id, language, created, out)
        phones, emails = self._contact_points(customer_id, language, first, last, company, index, out)
        points = [("phone", p) for p in phones] + [("email", e) for e in emails]
        out.search_terms.extend({"customer_id": customer_id, "term": term} for term in
                                customer_terms(f"{first} {last}", company.name if company else None, points))
        held = self._conversations(customer_id, language, created, phones, emails, out)
        self._notes(customer_id, language, created, held, out)
        self._tickets(customer_id, language, created, held, out)

    def _address(self, customer_id: int, language: str, out: _Batch) -> None:
        dice, pools = self.dice, self.pools
        if dice.random() >= 0.85:
            return  # some records lack an address: the customer page says so
        letters = "ABCDEFGHJKLMNPRSTVWXZ"
        if language == "nl":
            code = f"{1000 + dice.below(9000)} {dice.pick(letters)}{dice.pick(letters)}"
        else:
            code = f"{dice.pick(letters)}{dice.pick(letters)}{1 + dice.below(20)} {dice.below(10)}{dice.pick(letters)}"
        out.addresses.append({
            "id": self._id(Address), "customer_id": customer_id, "kind": "postal",
            "street": f"{dice.pick(pools.streets[language])} {1 + dice.below(180)}", "postal_code": code,
            "city": dice.pick(pools.cities[language]), "country": "NL" if language == "nl" else "GB"})

    def _contract(self, customer_id: int, language: str, customer_created: float, out: _Batch) -> None:
        dice = self.dice
        title, terms = dice.pick(CONTRACTS[language])
        start = self._moment(customer_created, self.now - 30 * DAY)
        end = start + dice.pick((1, 2, 3)) * 365 * DAY
        status = "active" if end > self.now else "ended"
        now = _at(self.now)
        out.contracts.append({
            "id": self._id(Contract), "customer_id": customer_id, "title": title, "status": status,
            "starts_on": datetime.fromtimestamp(start, UTC).date(), "ends_on": datetime.fromtimestamp(end, UTC).date(),
            "terms": terms, "created_at": _at(start), "updated_at": now})

    def _contact_points(self, customer_id: int, language: str, first: str, last: str, company: _Company | None,
                        index: int, out: _Batch) -> tuple[list[str], list[str]]:
        dice = self.dice
        country = "NL" if language == "nl" else "GB"
        points: dict[tuple[str, str], str] = {}
        if company is not None and company.switchboard and index in company.on_switchboard:
            value, normalized = self.phones.write(company.country, company.switchboard)
            points["phone", normalized] = value
        for number in range(dice.weighted(PHONE_COUNTS)):
            mobile = dice.random() < (0.8 if number == 0 else 0.4)
            value, normalized = self.phones.write(country, self.phones.new(country, mobile))
            points.setdefault(("phone", normalized), value)
        if dice.random() < 0.9:
            domains = [dice.pick(PERSONAL_DOMAINS[language])]
            if company is not None and dice.random() < 0.7:
                domains = [company.domain, *(domains if dice.random() < 0.1 else [])]
            for domain in domains:
                address = self._email(first, last, domain, personal=company is None or domain != company.domain)
                points.setdefault(("email", normalize_email(address) or address), address)
        phones: list[str] = []
        emails: list[str] = []
        for (kind, normalized), value in points.items():
            out.contact_points.append({"id": self._id(ContactPoint), "customer_id": customer_id, "kind": kind,
                                       "value": value, "normalized": normalized})
            (phones if kind == "phone" else emails).append(normalized)
        return phones, emails

    def _email(self, first: str, last: str, domain: str, personal: bool) -> str:
        dice, fold = self.dice, self.pools.fold
        given, family = fold(first) or "info", fold(last) or "contact"
        local = dice.pick((f"{given}.{family}", f"{given[0]}.{family}", f"{given}{family}", f"{family}.{given}",
                           given))
        if personal and dice.random() < 0.4:
            local += str(1 + dice.below(98))
        address = f"{local}@{domain}"
        while address in self.emails:
            address = f"{local}{100 + dice.below(9900)}@{domain}"
        self.emails.add(address)
        return address

    def _conversations(self, customer_id: int, language: str, customer_created: float, phones: list[str],
                       emails: list[str], out: _Batch) -> list[_Held]:
        count = self.dice.weighted(CONVERSATION_COUNTS)
        if not count:
            return []
        start = max(customer_created + DAY, self.now - HISTORY_DAYS * DAY)
        end = self.now - 2 * 3600
        channels = ("chat", *(("call",) * 4 if phones else ()), *(("mail",) * 2 if emails else ()))
        moments = sorted(self._moment(start, end) for _ in range(count))
        return [self._conversation(customer_id, language, self.dice.pick(channels), moment, phones, emails, out)
                for moment in moments]

    def _conversation(self, customer_id: int, language: str, channel: str, created: float, phones: list[str],
                      emails: list[str], out: _Batch) -> _Held:
        dice = self.dice
        outbound = channel != "chat" and dice.random() < 0.15
        subject = cause = None
        offered = answered = closed = abandoned = None
        agent = self._handler()
        if channel == "call":
            ours, theirs = dice.pick(SERVICE_NUMBERS[language]).replace(" ", ""), dice.pick(phones)
            source, target = (ours, theirs) if outbound else (theirs, ours)
            if outbound and dice.random() < 0.2:
                offered, abandoned, cause = created, created + dice.uniform(20, 40), "noAnswer"
            elif outbound:
                offered, answered = created, created + dice.uniform(5, 25)
            else:
                wait = min(dice.rng.expovariate(1 / 25), 600.0)
                if dice.random() < 0.09:
                    abandoned, cause, agent = created + wait + dice.uniform(3, 90), "cancel", None
                    offered = created + wait if dice.random() < 0.5 else None
                else:
                    offered = created + wait
                    answered = offered + dice.uniform(3, 18)
            if answered is not None:
                closed, cause = answered + min(dice.rng.lognormvariate(5.5, 0.7), 3600.0), "normalClearing"
        elif channel == "chat":
            source, target = f"visitor-{dice.rng.getrandbits(48):012x}", "website"
            wait = min(dice.rng.expovariate(1 / 20), 900.0)
            if dice.random() < 0.06:
                abandoned, agent = created + wait + dice.uniform(10, 120), None
            else:
                offered = created + wait
                answered = offered + dice.uniform(2, 15)
                closed = answered + min(dice.rng.lognormvariate(6.1, 0.6), 5400.0)
        else:
            ours, theirs = SERVICE_MAILBOXES[language], dice.pick(emails)
            source, target = (ours, theirs) if outbound else (theirs, ours)
            subject = self.texts.fill(dice.pick(TICKET_SUBJECTS[language]), language, created)
            if outbound:
                offered = answered = created
            else:
                offered = created + min(dice.rng.expovariate(1 / 3600), 6 * 3600.0)
                answered = offered + dice.uniform(10, 300)
            closed = answered + dice.uniform(60, 900)
        ended = closed if closed is not None else abandoned
        if ended is not None and ended > self.now:
            # Only a long mail wait can run past now; move the whole conversation back.
            shift = ended - self.now + dice.uniform(300, 7200)
            created -= shift
            offered, answered, closed, abandoned = (None if t is None else t - shift
                                                    for t in (offered, answered, closed, abandoned))
        conversation_id = self._id(Conversation)
        out.conversations.append({
            "id": conversation_id, "external_id": f"seed-{self.run}-{conversation_id}", "channel": channel,
            "direction": "out" if outbound else "in", "state": "closed" if closed is not None else "abandoned",
            "from_address": source, "to_address": target, "subject": subject, "customer_id": customer_id,
            "queue_id": dice.pick(self.queues) if self.queues and not outbound else None, "agent_id": agent,
            "disposition": dice.weighted(DISPOSITIONS) if closed is not None else None, "hangup_cause": cause,
            "created_at": _at(created), "offered_at": _at(offered), "answered_at": _at(answered),
            "wrap_up_at": None, "closed_at": _at(closed), "abandoned_at": _at(abandoned), "transferred_at": None,
        })
        return _Held(conversation_id, created, closed, agent)

    def _notes(self, customer_id: int, language: str, customer_created: float, held: list[_Held],
               out: _Batch) -> None:
        dice = self.dice
        answered = [c for c in held if c.closed is not None]
        for _ in range(dice.weighted(NOTE_COUNTS)):
            conversation = dice.pick(answered) if answered and dice.random() < 0.6 else None
            if conversation is not None and conversation.closed is not None:
                at = min(conversation.closed + dice.uniform(5, 600), self.now)
                agent = conversation.agent_id
            else:
                at = self._moment(customer_created, self.now - 1800)
                agent = self._handler()
            out.notes.append({
                "id": self._id(Note), "customer_id": customer_id,
                "conversation_id": conversation.id if conversation else None, "agent_id": agent,
                "body": self.texts.fill(dice.pick(NOTES[language]), language, at), "created_at": _at(at),
            })

    def _tickets(self, customer_id: int, language: str, customer_created: float, held: list[_Held],
                 out: _Batch) -> None:
        dice = self.dice
        for _ in range(dice.weighted(TICKET_COUNTS)):
            status = dice.weighted(TICKET_STATUSES)
            is_open = status in OPEN_TICKET_STATUSES
            # Open tickets are recent; old ones were dealt with long ago.
            earliest = max(customer_created, self.now - 45 * DAY) if is_open else customer_created
            candidates = [c for c in held if c.created >= earliest]
            conversation = dice.pick(candidates) if candidates and dice.random() < 0.5 else None
            if conversation is not None:
                created = min(conversation.created + dice.uniform(30, 900), self.now)
            else:
                created = self._moment(earliest, self.now - 3600)
            if is_open:
                updated = created + (self.now - created) * dice.random()
            else:
                updated = min(created + dice.uniform(3600, 240 * 3600), self.now)
            assignee = None
            if status is not TicketStatus.NEW or dice.random() < 0.4:
                assignee = conversation.agent_id if conversation and conversation.agent_id else self._handler()
            details = dice.rng.sample(TICKET_DETAILS[language], 1 + dice.below(2))
            out.tickets.append({
                "id": self._id(Ticket),
                "subject": self.texts.fill(dice.pick(TICKET_SUBJECTS[language]), language, created),
                "description": " ".join(self.texts.fill(d, language, created) for d in details),
                "status": status.value, "priority": dice.weighted(PRIORITIES), "customer_id": customer_id,
                "conversation_id": conversation.id if conversation else None, "assignee_id": assignee,
                "created_at": _at(created), "updated_at": _at(updated),
            })


MODELS: tuple[type[Any], ...] = (Customer, ContactPoint, Conversation, Note, Ticket, Address, Contract)
CONTRACTS = {
    "nl": (("Servicecontract", "Storingen binnen 8 uur verholpen; betaling binnen 30 dagen."),
           ("Onderhoudscontract", "Twee onderhoudsbeurten per jaar; onderdelen tegen kostprijs."),
           ("Raamovereenkomst levering", "Levering franco huis boven € 500; betaling binnen 14 dagen.")),
    "en": (("Service agreement", "Faults fixed within 8 hours; payment within 30 days."),
           ("Maintenance contract", "Two service visits a year; parts at cost."),
           ("Framework supply agreement", "Free delivery above £500; payment within 14 days.")),
}


async def _store(db: Database, batch: _Batch) -> None:
    """Insert one batch in one transaction, customers first (the other rows refer to them)."""
    async with db.transaction() as session:
        for model, rows in batch.tables():
            for offset in range(0, len(rows), CHUNK):
                # The table, not the ORM entity: ORM bulk inserts leave out each row's None values, which
                # splits a chunk into many small statements wherever the pattern of empty columns changes.
                await session.execute(insert(model.__table__), rows[offset:offset + CHUNK])


async def seed(db: Database, *, customers: int, region: str, rng_seed: int | None = None) -> str:
    """Add `customers` customers with contact points and history; return a one-line summary."""
    if customers < 0:
        raise InvalidInput("The number of customers cannot be negative.", field="customers")
    began = time.perf_counter()
    async with db.transaction() as session:
        agents = [(row.id, row.role) for row in await session.execute(select(Agent.id, Agent.role))]
        queues = list(await session.scalars(select(Queue.id)))
        next_ids = {model: int(await session.scalar(select(func.max(model.id))) or 0) + 1 for model in MODELS}
    generator = await asyncio.to_thread(_Generator, random.Random(rng_seed), customers=customers, region=region,
                                        agents=agents, queues=queues, next_ids=next_ids)
    totals = dict.fromkeys(("customers", "contact points", "conversations", "notes", "tickets", "search terms",
                            "addresses", "contracts"), 0)

    def generate(start: int) -> asyncio.Future[_Batch]:
        return asyncio.ensure_future(asyncio.to_thread(generator.batch, start, min(start + BATCH, customers)))

    # Generating is CPU work in this process and storing is mostly work in the database's, so the
    # next batch is built in a thread while earlier ones are stored, on PostgreSQL two at a time
    # (SQLite has one writer).
    parallel = 1 if db.is_sqlite else 2
    upcoming = generate(0) if customers else None
    storing: set[asyncio.Task[None]] = set()
    try:
        for start in range(0, customers, BATCH):
            assert upcoming is not None
            batch = await upcoming
            upcoming = generate(start + BATCH) if start + BATCH < customers else None
            while len(storing) >= parallel:
                done, storing = await asyncio.wait(storing, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
            storing.add(asyncio.create_task(_store(db, batch)))
            for name, (_, rows) in zip(totals, batch.tables(), strict=True):
                totals[name] += len(rows)
        await asyncio.gather(*storing)
    finally:
        for task in storing:
            task.cancel()
        await asyncio.gather(*storing, return_exceptions=True)
        if upcoming is not None:
            # The thread cannot be interrupted; let it finish rather than leave it running.
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await upcoming
    if not db.is_sqlite and customers:
        async with db.transaction() as session:
            for model in MODELS:
                last = select(func.max(model.id)).scalar_subquery()
                await session.execute(select(func.setval(func.pg_get_serial_sequence(model.__tablename__, "id"), last)))
    seconds = time.perf_counter() - began
    return "seeded " + ", ".join(f"{count} {name}" for name, count in totals.items()) + f" in {seconds:.1f} s"
