"""Deterministic Allo account data: generation, indexes, mutation and truth.

One ``Dataset(seed, scale)`` is a whole Allo team: users, numbers, address book
(= CRM people), companies, deals, conversations and their calls/SMS. Everything
is drawn from ``random.Random(seed)`` so two datasets with the same arguments
are identical. Only the internal model lives here; the JSON views mirror the
shapes of Allo's OpenAPI document (July 2026), written by hand.

Indexes are precomputed (items by (date, id), conversations per number by
last activity) so the server never re-sorts per request; mutations update
them and bump ``version``, which invalidates the query cache.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import re
import threading
import time
import unicodedata
import zlib
from collections import OrderedDict
from datetime import date, datetime, timezone
from typing import Any, Iterable

from . import vocab

DAY = 86400
DEFAULT_NOW = "2026-11-20T12:00:00Z"

SCALES: dict[str, dict[str, int]] = {
    "small": {"numbers": 3, "conversations": 450, "items": 2500, "days": 120, "users": 6, "companies": 40},
    "large": {"numbers": 4, "conversations": 20000, "items": 100000, "days": 365, "users": 12, "companies": 800},
    # One busy Allo number: 11 pages of conversations and ~16 pages of v1 calls at size=100.
    "busy": {"numbers": 1, "conversations": 1100, "items": 2800, "days": 90, "users": 6, "companies": 40},
}

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
TOUCHED_KINDS = ("conversations", "items", "calls", "contacts", "numbers")

TRUTH_STREAMS = (
    "conversations", "conversation_items", "phone_numbers", "users", "tags", "summary_templates",
    "webhooks", "webhook_event_types", "crm_people", "crm_companies", "crm_deals", "contacts", "contact_details",
    "calls", "team_metrics_daily", "outbound_metrics_daily",
)
ANALYTICS_STREAMS = ("team_metrics_daily", "outbound_metrics_daily")
# The user_id of the analytics streams' team row, as the connector writes it.
TEAM_ROW_USER_ID = "team"

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_ALNUM_MIXED = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# Outcome model: v2 collapses both transfer kinds into TRANSFERRED, v1 keeps
# the richer legacy values (CallApiResponse.result).
V2_RESULT = {"ANSWERED": "ANSWERED", "VOICEMAIL": "VOICEMAIL", "TRANSFERRED_AI": "TRANSFERRED",
             "TRANSFERRED_EXTERNAL": "TRANSFERRED"}


# ---------------------------------------------------------------- time helpers

def fmt_z(ts: int) -> str:
    """v2 conversation/item timestamps: ISO 8601 with Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def fmt_local(ts: int | None) -> str | None:
    """CRM, template and v1 timestamps: zone-less (Allo's examples omit the zone)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def parse_instant(value: str) -> float:
    """Parse ISO 8601 (Z, offset or zone-less = UTC) to epoch seconds; ValueError if invalid."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("empty timestamp")
    v = value.strip()
    if v.endswith(("z", "Z")):
        v = v[:-1] + "+00:00"
    dt = datetime.fromisoformat(v)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def parse_day(value: Any) -> int:
    """Parse a YYYY-MM-DD string to the epoch second of that UTC midnight; ValueError if not."""
    if not isinstance(value, str) or len(value) != 10:
        raise ValueError(f"not a YYYY-MM-DD date: {value!r}")
    d = date.fromisoformat(value)
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())


def day_str(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _rid(rng: random.Random, n: int, alphabet: str = _ALNUM) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _ascii(s: str) -> str:
    out = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    return "".join(ch for ch in out if ch.isalnum())


# ---------------------------------------------------------------- model

class User:
    __slots__ = ("id", "name", "email", "role", "status", "image_url")

    def ref(self) -> dict:
        return {"id": self.id, "name": self.name, "email": self.email}

    def view(self) -> dict:
        return {"id": self.id, "name": self.name, "email": self.email, "role": self.role,
                "status": self.status, "image_url": self.image_url}


class Company:
    __slots__ = ("suffix", "name", "website", "industry", "created_ts", "updated_ts", "deals", "persons")

    @property
    def id(self) -> str:
        return "com-" + self.suffix


class Deal:
    __slots__ = ("suffix", "name", "status", "amount", "currency", "closed_ts", "company", "created_ts",
                 "updated_ts")

    @property
    def id(self) -> str:
        return "dea-" + self.suffix


class Person:
    """An address-book entry: the same person is a v2 Contact, a CRM person and a v1 contact."""

    __slots__ = ("suffix", "name", "last_name", "numbers", "emails", "job_title", "website", "address",
                 "company", "created_ts", "updated_ts", "is_archived", "is_whitelisted")

    @property
    def full_name(self) -> str:
        return f"{self.name} {self.last_name}" if self.last_name else self.name


class Item:
    """One call or SMS. Transcripts are not stored: they are regenerated from (seed, id)."""

    __slots__ = ("id", "kind", "direction", "allo_number", "contact_number", "user", "ts", "duration",
                 "outcome", "recording_url", "summary", "tags", "content", "status", "message_type",
                 "extracted_data", "data_collected", "topic", "lang")

    def sort_key(self) -> tuple[int, str]:
        return (self.ts, self.id)


class Conversation:
    __slots__ = ("allo_number", "contact_number", "items")

    @property
    def last(self) -> Item:
        return self.items[-1]

    @property
    def last_ts(self) -> int:
        return self.items[-1].ts

    def sort_key(self) -> tuple[int, str]:
        # last_activity DESC, then contact_number ASC (stable tie-break for paging)
        return (-self.items[-1].ts, self.contact_number)


class AlloNumber:
    __slots__ = ("number", "name", "country", "type", "capabilities", "users", "lang")


# ---------------------------------------------------------------- dataset

class Dataset:
    """A deterministic Allo team.

    ``Dataset(seed=42, scale="small")``; ``scale`` is "small", "large", "busy", an int
    (number of conversations) or a tuple ``(conversations, items[, days])``.
    Keyword overrides: ``numbers``, ``conversations``, ``items``, ``days``,
    ``users``, ``companies``; ``now`` (datetime or ISO string) moves the clock.
    All public methods are thread-safe (one re-entrant lock).
    """

    def __init__(self, seed: int = 42, scale: Any = "small", now: Any = None, **overrides: int) -> None:
        self.seed = seed
        self.params = self._resolve_scale(scale, overrides)
        self.scale = scale
        self.lock = threading.RLock()
        if now is None:
            now = DEFAULT_NOW
        self.now_ts = int(now.timestamp()) if isinstance(now, datetime) else int(parse_instant(now))
        self.start_ts = (self.now_ts - self.params["days"] * DAY) // DAY * DAY
        self.version = 0
        self._rng = random.Random(seed)
        # Mutations draw from their own stream so they are reproducible
        # regardless of how much the generator consumed.
        self._mut_rng = random.Random(f"mutations:{seed}")
        self._used_numbers: set[str] = set()
        self._used_ids: set[str] = set()
        self._query_cache: OrderedDict = OrderedDict()
        self._touched: dict[str, dict] = {kind: {} for kind in TOUCHED_KINDS}
        self._generate()

    # ------------------------------------------------------------ parameters

    @staticmethod
    def _resolve_scale(scale: Any, overrides: dict[str, int]) -> dict[str, int]:
        if isinstance(scale, str):
            if scale not in SCALES:
                raise ValueError(f"unknown scale {scale!r}; use 'small', 'large', 'busy', an int or a tuple")
            params = dict(SCALES[scale])
        elif isinstance(scale, int):
            params = dict(SCALES["small"], conversations=scale, items=int(scale * 5.5))
        elif isinstance(scale, (tuple, list)) and 2 <= len(scale) <= 3:
            params = dict(SCALES["small"], conversations=int(scale[0]), items=int(scale[1]))
            if len(scale) == 3:
                params["days"] = int(scale[2])
        else:
            raise ValueError(f"bad scale {scale!r}")
        unknown = set(overrides) - set(SCALES["small"])
        if unknown:
            raise TypeError(f"unknown Dataset overrides: {sorted(unknown)}")
        params.update({k: int(v) for k, v in overrides.items()})
        params["numbers"] = max(1, min(params["numbers"], len(vocab.ALLO_NUMBERS)))
        params["users"] = max(2, min(params["users"], len(vocab.USERS)))
        params["conversations"] = max(params["numbers"], params["conversations"])
        params["items"] = max(params["conversations"], params["items"])
        params["days"] = max(2, params["days"])
        return params

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.now_ts, timezone.utc)

    @property
    def start(self) -> datetime:
        """Midnight UTC of the first day that can hold generated activity."""
        return datetime.fromtimestamp(self.start_ts, timezone.utc)

    # ------------------------------------------------------------ generation

    def _new_id(self, rng: random.Random, prefix: str, n: int = 16, alphabet: str = _ALNUM) -> str:
        while True:
            ident = prefix + _rid(rng, n, alphabet)
            if ident not in self._used_ids:
                self._used_ids.add(ident)
                return ident

    def _new_contact_number(self, rng: random.Random, country: str) -> str:
        while True:
            if country == "US":
                num = "+1" + rng.choice(["415", "628", "212", "646", "312", "917", "206", "512"]) + \
                      str(rng.randint(2, 9)) + "".join(rng.choices("0123456789", k=6))
            elif country == "FR":
                num = "+33" + rng.choice("67") + "".join(rng.choices("0123456789", k=8))
            elif country == "GB":
                num = "+447" + "".join(rng.choices("0123456789", k=9))
            elif country == "DE":
                num = "+49151" + "".join(rng.choices("0123456789", k=8))
            elif country == "ES":
                num = "+346" + "".join(rng.choices("0123456789", k=8))
            elif country == "CN":
                num = "+86138" + "".join(rng.choices("0123456789", k=8))
            else:
                num = "+8190" + "".join(rng.choices("0123456789", k=8))
            if num not in self._used_numbers:
                self._used_numbers.add(num)
                return num

    def _generate(self) -> None:
        rng = self._rng
        p = self.params
        self.team = {"id": "team-" + _rid(rng, 6), "name": "Acme Sales"}

        # users
        self.users: list[User] = []
        for name, local, role, status in vocab.USERS[: p["users"]]:
            u = User()
            u.id = self._new_id(rng, "usr-", 6)
            u.name, u.role, u.status = name, role, status
            u.email = f"{local}@acme-sales.com"
            u.image_url = f"https://storage.withallo.com/avatars/{u.id}.jpg" if rng.random() < 0.6 else None
            self.users.append(u)
        self.users_by_id = {u.id: u for u in self.users}

        # numbers: users of number i are users j with j % n == i; the admin also
        # covers the second line so one user appears on several numbers.
        self.numbers: list[AlloNumber] = []
        n = p["numbers"]
        for i, (num, label, country, caps, lang) in enumerate(vocab.ALLO_NUMBERS[:n]):
            a = AlloNumber()
            a.number, a.name, a.country, a.type, a.capabilities, a.lang = num, label, country, "NUMBER", caps, lang
            a.users = [u for j, u in enumerate(self.users) if j % n == i]
            if i == 1 and self.users[0] not in a.users:
                a.users.insert(0, self.users[0])
            self.numbers.append(a)
            self._used_numbers.add(num)
        self.numbers_by_number = {a.number: a for a in self.numbers}
        # A sender ID (no number): listed first, as seen on live accounts.
        self.sender_id = {"number": None, "name": "Acme Corp", "country": "FR", "type": "SENDER_ID",
                          "capabilities": ["SMS"], "users": []}

        self.tags = [{"id": self._new_id(rng, "tag-", 6), "name": name, "color": color}
                     for name, color in vocab.TAGS[: 10 if p["items"] < 50000 else 12]]
        self.summary_templates = self._gen_templates(rng)
        self.webhooks = self._gen_webhooks(rng)
        self.webhook_event_types = [{"name": k, "description": d} for k, d in vocab.WEBHOOK_EVENT_TYPES]

        self._gen_companies(rng)
        self._gen_conversations(rng)
        self._build_indexes()

    def _gen_templates(self, rng: random.Random) -> list[dict]:
        base = self.start_ts - 30 * DAY
        return [
            {"id": self._new_id(rng, "tst-", 6), "name": "Sales call", "call_context": "B2B SaaS sales calls",
             "icon": "📞",
             "sections": [{"title": "Pain points", "instructions": "List the prospect's pain points", "order": 0},
                          {"title": "Next steps", "instructions": "What was agreed", "order": 1}],
             "created_at": fmt_local(base), "updated_at": fmt_local(base + 12 * DAY + 3600)},
            {"id": self._new_id(rng, "tst-", 6), "name": "Support — résumé", "call_context": None, "icon": None,
             "sections": [{"title": "Problème", "instructions": "Décrire le problème du client", "order": 0},
                          {"title": "Résolution", "instructions": "Ce qui a été fait", "order": 1},
                          {"title": "Suivi", "instructions": "Actions à prévoir", "order": 2}],
             "created_at": fmt_local(base + 2 * DAY), "updated_at": fmt_local(base + 2 * DAY)},
        ]

    def _gen_webhooks(self, rng: random.Random) -> list[dict]:
        return [
            {"id": self._new_id(rng, "ep_", 20, _ALNUM_MIXED), "url": "https://example.com/webhooks/allo",
             "topics": ["call.completed", "sms.received"], "description": "Production event stream",
             "enabled": True,
             # The list endpoint is documented to omit it, but a live account
             # may return it: the connector must never emit it.
             "signing_secret": "whsec_" + _rid(rng, 32, _ALNUM_MIXED),
             "created_at": fmt_z(self.start_ts - 20 * DAY + 51300)},
            {"id": self._new_id(rng, "ep_", 20, _ALNUM_MIXED), "url": "https://hooks.zapier.com/hooks/catch/123/abc/",
             "topics": ["call.received", "contact.created", "summary.updated"], "description": None,
             "enabled": False, "created_at": fmt_z(self.start_ts + 5 * DAY + 7200)},
        ]

    def _gen_companies(self, rng: random.Random) -> None:
        self.companies: list[Company] = []
        self.deals: list[Deal] = []
        names: set[str] = set()
        for _ in range(self.params["companies"]):
            while True:
                stem = rng.choice(vocab.COMPANY_STEMS)
                suffix = rng.choice(vocab.COMPANY_SUFFIXES)
                name = stem if suffix and suffix in stem else f"{stem} {suffix}".strip()
                if name in names:
                    name = f"{name} {rng.randint(2, 999)}"
                if name not in names:
                    names.add(name)
                    break
            c = Company()
            c.suffix = _rid(rng, 6)
            self._used_ids.add(c.id)
            c.name = name
            c.website = f"https://{_ascii(stem) or 'company'}{rng.randint(1, 99)}.example.com" \
                if rng.random() < 0.7 else None
            c.industry = rng.choice(vocab.INDUSTRIES)
            c.created_ts = self.start_ts - rng.randint(10, 400) * DAY + rng.randint(0, DAY - 1)
            c.updated_ts = self._cap(rng, c.created_ts + rng.randint(0, 200) * DAY)
            c.deals, c.persons = [], []
            self.companies.append(c)
            for _ in range(rng.choices([0, 1, 2, 3], [40, 30, 20, 10])[0]):
                self.deals.append(self._new_deal(rng, c))
        # A few deals come from a CRM sync without a company.
        for _ in range(max(1, len(self.companies) // 20)):
            self.deals.append(self._new_deal(rng, None))

    def _cap(self, rng: random.Random, ts: int) -> int:
        """Keep a generated timestamp in the past without piling many on the same second."""
        limit = self.now_ts - 3600
        return ts if ts <= limit else limit - rng.randint(0, 5 * DAY)

    def _new_deal(self, rng: random.Random, company: Company | None) -> Deal:
        d = Deal()
        d.suffix = _rid(rng, 6)
        self._used_ids.add(d.id)
        d.name = rng.choice(vocab.DEAL_NAMES)
        d.status = rng.choices([s for s, _ in vocab.DEAL_STATUSES], [w for _, w in vocab.DEAL_STATUSES])[0]
        d.amount = rng.choice([None, round(rng.uniform(500, 90000), 2), rng.randint(1, 120) * 1000])
        d.currency = rng.choice(vocab.CURRENCIES) if d.amount is not None else None
        base = company.created_ts if company else self.start_ts - 100 * DAY
        d.created_ts = base + rng.randint(1, 300) * DAY // 2
        d.created_ts = min(d.created_ts, self.now_ts - 5 * DAY)
        d.closed_ts = None
        if d.status in vocab.CLOSED_DEAL_STATUSES:
            d.closed_ts = min(d.created_ts + rng.randint(5, 90) * DAY, self.now_ts - DAY)
        d.updated_ts = self._cap(rng, max(d.closed_ts or d.created_ts, d.created_ts + rng.randint(0, 30) * DAY))
        d.company = company
        if company is not None:
            company.deals.append(d)
        return d

    def _new_person(self, rng: random.Random, numbers: list[str], created_ts: int) -> Person:
        pr = Person()
        pr.suffix = _rid(rng, 12)
        while "per-" + pr.suffix in self._used_ids:
            pr.suffix = _rid(rng, 12)
        self._used_ids.add("per-" + pr.suffix)
        pr.name = rng.choice(vocab.FIRST_NAMES)
        pr.last_name = rng.choice(vocab.LAST_NAMES) if rng.random() < 0.9 else None
        pr.numbers = list(numbers)
        local = _ascii(pr.name) + ("." + _ascii(pr.last_name) if pr.last_name and _ascii(pr.last_name) else "")
        if not local or local.startswith("."):
            local = "contact" + pr.suffix[:4]
        pr.company = rng.choice(self.companies) if self.companies and rng.random() < 0.7 else None
        domain = (_ascii(pr.company.name)[:12] or "corp") + ".example.com" if pr.company else "example.com"
        pr.emails = [f"{local}@{domain}"] if rng.random() < 0.8 else []
        if pr.emails and rng.random() < 0.2:
            pr.emails.append(f"{local}{rng.randint(1, 99)}@gmail.example")
        pr.job_title = rng.choice(vocab.JOB_TITLES)
        pr.website = pr.company.website if pr.company else None
        pr.address = rng.choice([None, None, "12 rue de la Paix, 75002 Paris", "1 Market St, San Francisco, CA",
                                 "221B Baker Street, London", "Friedrichstraße 43, 10117 Berlin"])
        pr.created_ts = created_ts
        pr.updated_ts = created_ts
        pr.is_archived = rng.random() < 0.05
        pr.is_whitelisted = rng.random() < 0.2
        if pr.company is not None:
            pr.company.persons.append(pr)
        return pr

    def _gen_conversations(self, rng: random.Random) -> None:
        p = self.params
        n_numbers = len(self.numbers)
        total_convs = p["conversations"]
        # Per-number conversation counts, as even as possible.
        counts = [total_convs // n_numbers + (1 if i < total_convs % n_numbers else 0) for i in range(n_numbers)]

        countries = ["US", "FR", "GB", "DE", "ES", "CN", "JP"]
        conv_keys: list[tuple[str, str]] = []
        seen_by_number: dict[str, set[str]] = {a.number: set() for a in self.numbers}
        all_contacts: list[str] = []
        for a, count in zip(self.numbers, counts):
            for _ in range(count):
                # ~8% of conversations reuse a contact already talking to
                # another line: same contact_number under two allo_numbers.
                reuse = [c for c in all_contacts[-50:] if c not in seen_by_number[a.number]]
                if reuse and rng.random() < 0.08:
                    contact = rng.choice(reuse)
                else:
                    country = a.country if rng.random() < 0.85 else rng.choice(countries)
                    contact = self._new_contact_number(rng, country)
                    all_contacts.append(contact)
                seen_by_number[a.number].add(contact)
                conv_keys.append((a.number, contact))

        # Address book: ~72% of contact numbers belong to a known person;
        # a few persons have two numbers, a few numbers two persons (shared line).
        self.persons: list[Person] = []
        self.book: dict[str, list[Person]] = {}
        unknown_pool: list[str] = []
        for contact in all_contacts:
            if contact in self.book:
                continue
            if rng.random() < 0.72:
                pr = self._new_person(rng, [contact], 0)
                self.persons.append(pr)
                self.book.setdefault(contact, []).append(pr)
                if rng.random() < 0.02:
                    pr2 = self._new_person(rng, [contact], 0)
                    self.persons.append(pr2)
                    self.book[contact].append(pr2)
            else:
                unknown_pool.append(contact)
        for pr in list(self.persons):
            if unknown_pool and rng.random() < 0.05:
                second = unknown_pool.pop(rng.randrange(len(unknown_pool)))
                pr.numbers.append(second)
                self.book.setdefault(second, []).append(pr)
        # Address-book entries that never called or texted.
        for _ in range(max(2, len(self.persons) // 10)):
            num = self._new_contact_number(rng, rng.choice(countries[:3]))
            pr = self._new_person(rng, [num], 0)
            self.persons.append(pr)
            self.book.setdefault(num, []).append(pr)

        # Items per conversation: at least one each, the rest skewed so some
        # conversations are long threads and most are short.
        n_conv = len(conv_keys)
        extra = p["items"] - n_conv
        weights = [rng.random() ** 4 + 0.02 for _ in range(n_conv)]
        per_conv = [1] * n_conv
        if extra > 0:
            for idx in rng.choices(range(n_conv), weights, k=extra):
                per_conv[idx] += 1

        window = self.now_ts - 60 - self.start_ts
        self.convs: dict[tuple[str, str], Conversation] = {}
        self.items_by_id: dict[str, Item] = {}
        for (allo, contact), k in zip(conv_keys, per_conv):
            a = self.numbers_by_number[allo]
            # Recent activity is more common than old activity.
            end = self.now_ts - 60 - int(window * rng.random() ** 1.3)
            span = int(rng.expovariate(1 / (10 * DAY)))
            begin = max(self.start_ts, end - span)
            times = sorted(rng.randint(begin, end) for _ in range(k - 1)) + [end]
            conv = Conversation()
            conv.allo_number, conv.contact_number, conv.items = allo, contact, []
            prev = None
            for ts in times:
                item = self._new_item(rng, a, contact, ts, generated=True)
                # Same-second SMS bursts: items tie on date inside a conversation.
                if prev is not None and item.kind == "SMS" and prev.kind == "SMS" and rng.random() < 0.05:
                    item.ts = prev.ts
                conv.items.append(item)
                prev = item
            self.convs[(allo, contact)] = conv

        self._inject_edge_cases(rng)
        for conv in self.convs.values():
            conv.items.sort(key=Item.sort_key)
            for it in conv.items:
                self.items_by_id[it.id] = it

        # Persons are created before their first activity.
        first_seen: dict[str, int] = {}
        for conv in self.convs.values():
            t = conv.items[0].ts
            if t < first_seen.get(conv.contact_number, 1 << 62):
                first_seen[conv.contact_number] = t
        for pr in self.persons:
            first = min((first_seen.get(nm, self.now_ts - DAY) for nm in pr.numbers))
            pr.created_ts = first - rng.randint(1, 60 * DAY)
            pr.updated_ts = max(pr.created_ts, self._cap(rng, pr.created_ts + rng.randint(0, 90 * DAY)))

    def _inject_edge_cases(self, rng: random.Random) -> None:
        """Ties and day boundaries that incremental logic must survive."""
        by_number: dict[str, list[Conversation]] = {}
        for conv in self.convs.values():
            by_number.setdefault(conv.allo_number, []).append(conv)
        for convs in by_number.values():
            # Two pairs of conversations sharing the exact same last_activity.
            if len(convs) >= 4:
                picks = rng.sample(convs, 4)
                for c1, c2 in (picks[:2], picks[2:]):
                    t = max(c1.items[-1].ts, c2.items[-1].ts)
                    c1.items[-1].ts = c2.items[-1].ts = t
        # Items exactly on UTC day boundaries (00:00:00 and 23:59:59).
        items = [it for conv in self.convs.values() for it in conv.items]
        for it in rng.sample(items, min(len(items), 8)):
            midnight = it.ts // DAY * DAY
            it.ts = midnight if rng.random() < 0.5 else midnight - 1
            it.ts = max(it.ts, self.start_ts)

    def _pick_user(self, rng: random.Random, a: AlloNumber, ts: int) -> User:
        # Blocked users left the team: they only appear on old activity.
        users = a.users
        if ts > self.now_ts - 30 * DAY:
            users = [u for u in users if u.status == "ACTIVE"] or users
        return rng.choice(users)

    def _new_item(self, rng: random.Random, a: AlloNumber, contact: str, ts: int, *, generated: bool) -> Item:
        it = Item()
        sms_ok = "SMS" in a.capabilities
        it.kind = "SMS" if sms_ok and rng.random() < (0.45 if a.lang == "fr" else 0.4) else "CALL"
        it.id = self._new_id(rng, "cll-" if it.kind == "CALL" else "msg-")
        it.direction = "INBOUND" if rng.random() < 0.55 else "OUTBOUND"
        it.allo_number, it.contact_number, it.ts = a.number, contact, ts
        it.user = self._pick_user(rng, a, ts)
        it.lang = a.lang
        it.topic = rng.randrange(len(vocab.CALL_TOPICS_FR if a.lang == "fr" else vocab.CALL_TOPICS))
        it.extracted_data = it.data_collected = None
        if it.kind == "CALL":
            if it.direction == "INBOUND":
                it.outcome = rng.choices(["ANSWERED", "VOICEMAIL", "TRANSFERRED_AI", "TRANSFERRED_EXTERNAL"],
                                         [65, 15, 12, 8])[0]
            else:
                it.outcome = rng.choices(["ANSWERED", "VOICEMAIL"], [70, 30])[0]
            if it.outcome == "ANSWERED":
                it.duration = max(5, min(3600, int(rng.lognormvariate(5.0, 0.9))))
                if rng.random() < 0.02:
                    it.duration = 60  # boundary of calls_over_1_min
            elif it.outcome == "VOICEMAIL":
                it.duration = rng.randint(8, 90)
            elif it.outcome == "TRANSFERRED_AI":
                it.duration = rng.randint(30, 400)
            else:
                it.duration = rng.randint(20, 900)
            has_rec = (it.outcome != "VOICEMAIL" and rng.random() < 0.9) or \
                      (it.outcome == "VOICEMAIL" and it.direction == "INBOUND")
            it.recording_url = f"https://storage.withallo.com/recordings/{it.id}.mp3" if has_rec else None
            tag_names = [t["name"] for t in self.tags]
            it.tags = rng.sample(tag_names, rng.choices([0, 1, 2], [35, 45, 20])[0])
            it.content = it.status = it.message_type = None
            # AI summary: pending for many fresh calls, and for a few old ones.
            age = self.now_ts - ts
            pending = (not generated) or rng.random() < (0.6 if age < 2 * DAY else 0.08)
            it.summary = None if pending else self.summary_text(it)
            if it.direction == "INBOUND" and it.outcome != "VOICEMAIL" and rng.random() < 0.15:
                # Undocumented live fields; unextracted values come back as "null".
                persons = self.book.get(contact) or []
                pr = persons[0] if persons else None
                it.extracted_data = {"contact": {
                    "name": pr.full_name if pr else "null",
                    "emails": list(pr.emails) if pr else [],
                    "address": "null",
                    "company": pr.company.name if pr and pr.company else "null",
                    "website": "null",
                    "job_title": (pr.job_title if pr and pr.job_title else "null"),
                }}
                it.data_collected = {} if rng.random() < 0.6 else {"budget": str(rng.randint(1, 50) * 1000),
                                                                   "timeline": rng.choice(["Q1", "Q2", "ASAP"])}
        else:
            it.outcome = it.duration = it.recording_url = it.summary = it.tags = None
            it.content = rng.choice(vocab.SMS_TEXTS)
            if it.direction == "OUTBOUND":
                it.status = rng.choices(["DELIVERED", "SENT", "FAILED", "PENDING"], [80, 12, 5, 3])[0]
            else:
                it.status = "DELIVERED"
            it.message_type = rng.choices(["SMS", "MMS", "WHATSAPP"], [90, 7, 3])[0]
        return it

    # ------------------------------------------------------------ text

    def _topic(self, it: Item) -> str:
        topics = vocab.CALL_TOPICS_FR if it.lang == "fr" else vocab.CALL_TOPICS
        return topics[it.topic % len(topics)]

    def summary_text(self, it: Item) -> str:
        """Deterministic markdown AI summary of a call."""
        persons = self.book.get(it.contact_number) or []
        who = persons[0].full_name if persons else None
        topic = self._topic(it)
        step = vocab.NEXT_STEPS[(it.topic + len(it.id)) % len(vocab.NEXT_STEPS)]
        if it.lang == "fr":
            head = f"{who or 'Un appelant inconnu'} a appelé au sujet de {topic}." if it.direction == "INBOUND" \
                else f"Appel sortant vers {who or 'un prospect'} au sujet de {topic}."
            if it.outcome == "VOICEMAIL":
                head = f"Message vocal concernant {topic}."
            return f"{head}\n\n- Prochaine étape : {step}"
        if it.outcome == "VOICEMAIL":
            head = f"Voicemail {'from' if it.direction == 'INBOUND' else 'left for'} {who or 'an unknown caller'} about {topic}."
        elif it.direction == "INBOUND":
            head = f"{who or 'An unknown caller'} called about {topic}."
        else:
            head = f"Outbound call to {who or 'a prospect'} about {topic}."
        return f"{head}\n\n- **Next step:** {step}"

    def transcript_rows(self, it: Item) -> list[tuple[str, float, float, str]]:
        """(source, start_s, end_s, text) rows, regenerated from (seed, id); [] for SMS."""
        if it.kind != "CALL":
            return []
        r = random.Random(f"transcript:{self.seed}:{it.id}")
        topic = self._topic(it)
        persons = self.book.get(it.contact_number) or []
        name = persons[0].full_name if persons else "Sam"
        dur = float(it.duration or 10)
        if it.outcome == "VOICEMAIL":
            line = vocab.VOICEMAIL_LINES[1 if it.lang == "fr" else 0]
            if it.direction == "INBOUND":
                return [("EXTERNAL", 1.0, round(dur - 0.5, 2), line.format(name=name, topic=topic))]
            return [("USER", 1.0, round(dur - 0.5, 2), line.format(name=it.user.name, topic=topic))]
        fr = it.lang == "fr"
        user_lines = vocab.TRANSCRIPT_FR_USER_LINES if fr else vocab.TRANSCRIPT_USER_LINES
        ext_lines = vocab.TRANSCRIPT_FR_EXTERNAL_LINES if fr else vocab.TRANSCRIPT_EXTERNAL_LINES
        n = max(2, min(12, int(dur // 20)))
        sources: list[str] = []
        if it.outcome == "TRANSFERRED_AI":
            sources = ["AGENT", "EXTERNAL", "AGENT"]
        while len(sources) < n:
            sources.append("USER" if (len(sources) % 2 == 0) == (it.direction == "INBOUND") else "EXTERNAL")
        slot = dur / len(sources)
        rows = []
        for i, src in enumerate(sources):
            if src == "AGENT":
                text = vocab.AGENT_LINES[min(i // 2, len(vocab.AGENT_LINES) - 1)]
            elif src == "USER":
                if i <= 1 and it.direction == "OUTBOUND":
                    text = (f"Bonjour, c'est {it.user.name}, je vous appelle au sujet de {topic}." if fr
                            else f"Hi, this is {it.user.name} from Acme, calling about {topic}.")
                else:
                    text = r.choice(user_lines)
            elif i == 0 and it.direction == "OUTBOUND":
                text = "Allô ?" if fr else "Hello?"
            else:
                text = (ext_lines[0] if i <= 1 else r.choice(ext_lines[1:])).format(topic=topic)
            start = round(i * slot + r.uniform(0, slot * 0.2), 2)
            end = round(min(dur, start + max(0.5, slot * r.uniform(0.5, 0.95))), 2)
            rows.append((src, start, end, text))
        return rows

    # ------------------------------------------------------------ indexes

    def _build_indexes(self) -> None:
        self._order: list[Item] = sorted(self.items_by_id.values(), key=Item.sort_key)
        self._order_ts = [it.ts for it in self._order]
        self._conv_order: dict[str, list[Conversation]] = {}
        self._conv_keys: dict[str, list[int]] = {}
        for a in self.numbers:
            self._rebuild_conv_order(a.number)
        self._contact_stats: dict[str, list[int]] = {}
        for it in self._order:
            st = self._contact_stats.setdefault(it.contact_number, [0, 0])
            st[0] += 1
            st[1] = max(st[1], it.ts)
        self._invalidate()

    def _rebuild_conv_order(self, allo: str) -> None:
        convs = sorted((c for c in self.convs.values() if c.allo_number == allo), key=Conversation.sort_key)
        self._conv_order[allo] = convs
        self._conv_keys[allo] = [-c.last_ts for c in convs]

    def _invalidate(self) -> None:
        self.version += 1
        self._query_cache.clear()

    def _cached(self, key: tuple, build) -> Any:
        hit = self._query_cache.get(key)
        if hit is not None:
            self._query_cache.move_to_end(key)
            return hit
        value = build()
        self._query_cache[key] = value
        if len(self._query_cache) > 256:
            self._query_cache.popitem(last=False)
        return value

    # ------------------------------------------------------------ views (v2)

    def contacts_for(self, number: str) -> list[dict]:
        """v2 Contact list for a phone number ([] for an unknown caller)."""
        out = []
        for pr in self.book.get(number, ()):
            c = pr.company
            out.append({
                "id": "cnt-" + pr.suffix,
                "name": pr.full_name,
                "company": {"id": c.id, "name": c.name} if c else None,
                "deals": [{"id": d.id, "name": d.name, "status": d.status} for d in c.deals] if c else [],
            })
        return out

    def item_view(self, it: Item, transcript: bool = False) -> dict:
        """ConversationItem. ``transcript`` is null unless requested (and always null for SMS)."""
        tr = None
        if transcript and it.kind == "CALL":
            # v2 TranscriptEntry knows USER/EXTERNAL only: the AI agent speaks for the team.
            tr = [{"source": "USER" if s == "AGENT" else s, "time": fmt_z(it.ts + int(st)), "text": t}
                  for s, st, _en, t in self.transcript_rows(it)]
        d = {
            "id": it.id, "type": it.kind, "direction": it.direction,
            "allo_number": it.allo_number, "contact_number": it.contact_number,
            "contacts": self.contacts_for(it.contact_number),
            "user": it.user.ref(),
            "date": fmt_z(it.ts),
            "duration": it.duration,
            "result": V2_RESULT.get(it.outcome) if it.outcome else None,
            "recording_url": it.recording_url,
            "summary": it.summary,
            "tags": list(it.tags) if it.tags is not None else None,
            "transcript": tr,
            "content": it.content, "status": it.status, "message_type": it.message_type,
        }
        if it.extracted_data is not None:
            d["extracted_data"] = it.extracted_data
            d["data_collected"] = it.data_collected
        return d

    def conversation_view(self, conv: Conversation, transcript: bool = False) -> dict:
        return {"contact_number": conv.contact_number, "contacts": self.contacts_for(conv.contact_number),
                "last_activity": fmt_z(conv.last_ts), "last_item": self.item_view(conv.last, transcript)}

    def phone_numbers_view(self) -> list[dict]:
        out = [dict(self.sender_id)]
        for a in self.numbers:
            out.append({"number": a.number, "name": a.name, "country": a.country, "type": a.type,
                        "capabilities": list(a.capabilities), "users": [u.ref() for u in a.users]})
        return out

    def v1_numbers_view(self) -> list[dict]:
        return [{"number": a.number, "name": a.name, "country": a.country, "is_shared_number": len(a.users) > 1}
                for a in self.numbers]

    def users_view(self, status: str = "ACTIVE", role: str | None = None) -> list[dict]:
        return [u.view() for u in self.users if u.status == status and (role is None or u.role == role)]

    # ------------------------------------------------------------ views (CRM, v1)

    def _person_stats(self, pr: Person) -> tuple[int, int | None]:
        count, last = 0, None
        for nm in pr.numbers:
            st = self._contact_stats.get(nm)
            if st and st[0]:
                count += st[0]
                last = st[1] if last is None else max(last, st[1])
        return count, last

    def crm_person_view(self, pr: Person) -> dict:
        count, last = self._person_stats(pr)
        c = pr.company
        return {"id": "per-" + pr.suffix, "name": pr.name, "last_name": pr.last_name, "job_title": pr.job_title,
                "website": pr.website, "address": pr.address, "numbers": list(pr.numbers),
                "emails": list(pr.emails), "company": {"id": c.id, "name": c.name} if c else None,
                "interactions": count, "last_activity_at": fmt_local(last),
                "created_at": fmt_local(pr.created_ts), "updated_at": fmt_local(pr.updated_ts)}

    def _company_stats(self, c: Company) -> tuple[int, int | None]:
        count, last = 0, None
        for pr in c.persons:
            n, t = self._person_stats(pr)
            count += n
            if t is not None:
                last = t if last is None else max(last, t)
        return count, last

    def crm_company_view(self, c: Company) -> dict:
        count, last = self._company_stats(c)
        return {"id": c.id, "name": c.name, "website": c.website, "industry": c.industry,
                "person_count": len(c.persons), "interactions": count, "last_activity_at": fmt_local(last),
                "created_at": fmt_local(c.created_ts), "updated_at": fmt_local(c.updated_ts)}

    def crm_deal_view(self, d: Deal) -> dict:
        c = d.company
        return {"id": d.id, "name": d.name, "status": d.status, "amount": d.amount, "currency": d.currency,
                "closed_at": fmt_local(d.closed_ts), "company": {"id": c.id, "name": c.name} if c else None,
                "created_at": fmt_local(d.created_ts), "updated_at": fmt_local(d.updated_ts)}

    def v1_contact_view(self, pr: Person) -> dict:
        _count, last = self._person_stats(pr)
        engagement = None
        if last is not None:
            age = self.now_ts - last
            engagement = "ENGAGED" if age < 14 * DAY else "COOLING" if age < 60 * DAY else "COLD"
        c = pr.company
        return {"id": "cnt_" + pr.suffix, "name": pr.name, "last_name": pr.last_name,
                "company": {"name": c.name, "id": "com_" + c.suffix} if c else None,
                "job_title": pr.job_title, "website": pr.website,
                "status": "archived" if pr.is_archived else "active", "is_archived": pr.is_archived,
                "created_at": fmt_local(pr.created_ts), "updated_at": fmt_local(pr.updated_ts),
                "numbers": list(pr.numbers), "is_whitelisted": pr.is_whitelisted,
                "last_activity_date": fmt_local(last), "engagement": engagement}

    # The most recent calls and SMS a contact's context lists (`extend=activity`).
    CONTACT_ACTIVITY_LIMIT = 10

    def v1_contact_by_id(self, contact_id: str) -> Person | None:
        with self.lock:
            ids = self._cached(("v1contact_ids", self.version), lambda: {"cnt_" + p.suffix: p for p in self.persons})
            return ids.get(contact_id)

    def _contact_extras(self, pr: Person) -> tuple[dict, dict | None]:
        """A contact's CRM links (`integration_data`) and `custom_properties`: not stored, drawn from
        (seed, contact). About 45% are linked to HubSpot, 20% to Salesforce, 10% to Pipedrive (a few to two
        CRMs), the rest to none ({}); 30% have no custom properties (null)."""
        rng = random.Random(f"contact-extras:{self.seed}:{pr.suffix}")
        integration: dict[str, dict] = {}
        r = rng.random()
        if r < 0.45 or rng.random() < 0.05:
            integration["HUBSPOT"] = {"contact_id": str(rng.randint(10_000, 99_999_999)),
                                      "deal_stage": rng.choice(["Appointment scheduled", "Qualified to buy",
                                                                "Negotiation", "Closed won", None])}
        if 0.45 <= r < 0.65:
            integration["SALESFORCE"] = {"contact_id": "003" + _rid(rng, 15, _ALNUM_MIXED),
                                         "account_id": "001" + _rid(rng, 15, _ALNUM_MIXED) if pr.company else None}
        if 0.65 <= r < 0.75:
            integration["PIPEDRIVE"] = {"person_id": rng.randint(1, 999_999),
                                        "org_id": rng.randint(1, 99_999) if pr.company else None}
        custom = None
        if rng.random() >= 0.3:
            custom = {"preferred_language": rng.choice(["English", "French", "German", "Spanish"]),
                      "vip_status": rng.random() < 0.15}
            if rng.random() < 0.5:
                custom["lead_score"] = rng.randint(0, 100)
        return integration, custom

    def contact_activity(self, pr: Person, limit: int) -> list[dict]:
        """The contact's most recent calls and SMS on any Allo number, newest first (ContactActivityApiResponse)."""
        recent: list[Item] = []
        for number in pr.numbers:
            for a in self.numbers:
                conv = self.convs.get((a.number, number))
                if conv is not None:
                    recent.extend(conv.items[-limit:])
        recent.sort(key=Item.sort_key, reverse=True)
        return [{"type": f"{it.direction}_{it.kind}", "made_by": it.user.name, "made_at": fmt_local(it.ts),
                 "allo_number": it.allo_number if it.kind == "CALL" else None,
                 "content": it.content if it.kind == "SMS" else None} for it in recent[:limit]]

    def v1_contact_context_view(self, pr: Person, engagement: bool = True, activity: bool = True) -> dict:
        """GET /v1/api/contact/{contact_id} (ContactContextApiResponse): the list's identity fields plus
        emails, CRM links, custom properties; `engagement` and `activity` only when extended."""
        listed = self.v1_contact_view(pr)
        integration, custom = self._contact_extras(pr)
        out = {key: listed[key] for key in ("id", "name", "last_name", "numbers")}
        out["emails"] = list(pr.emails)
        out.update({key: listed[key] for key in ("company", "job_title", "website")})
        out["integration_data"] = integration
        out["custom_properties"] = custom
        if engagement:
            out["engagement"] = listed["engagement"]
        if activity:
            out["activity"] = self.contact_activity(pr, self.CONTACT_ACTIVITY_LIMIT)
        out["conversation_url"] = f"/v1/api/contact/{listed['id']}/conversation"
        return out

    @staticmethod
    def v1_call_id(it: Item) -> str:
        return "call_" + it.id[4:]

    def v1_call_view(self, it: Item) -> dict:
        """Legacy CallApiResponse derived from the same CALL item."""
        inbound = it.direction == "INBOUND"
        return {
            "id": self.v1_call_id(it),
            "from_number": it.contact_number if inbound else it.allo_number,
            "to_number": it.allo_number if inbound else it.contact_number,
            "length_in_minutes": round((it.duration or 0) / 60, 2),
            "type": it.direction,
            "result": it.outcome,
            "summary": it.summary,
            "tag": it.tags[0] if it.tags else None,
            "recording_url": it.recording_url,
            "start_date": fmt_local(it.ts),
            "transcript": [{"source": s, "text": t, "time": fmt_local(it.ts + int(st)),
                            "start_seconds": st, "end_seconds": en}
                           for s, st, en, t in self.transcript_rows(it)],
        }

    # ------------------------------------------------------------ queries

    def conversations(self, allo_number: str, since: float | None = None, unread: bool | None = None) -> list:
        """Conversations of one number, last_activity DESC, optionally strictly after ``since``."""
        with self.lock:
            convs = self._conv_order.get(allo_number, [])
            if since is not None:
                # keys are -last_ts ascending: last_ts > since  <=>  key < -since
                convs = convs[: bisect.bisect_left(self._conv_keys[allo_number], -since)]
            if unread is not None:
                convs = [c for c in convs if self.is_unread(c) == unread]
            return convs

    def is_unread(self, conv: Conversation) -> bool:
        """Derived flag: the last item is inbound and less than three days old."""
        return conv.last.direction == "INBOUND" and self.now_ts - conv.last_ts < 3 * DAY

    def search_items(self, *, allo_number=None, contact_number=None, kind=None, direction=None, user_id=None,
                     result=None, tags=None, day_from=None, day_to=None, sort="DATE_DESC", search=None) -> list[Item]:
        """Items matching the filters, in the requested order (cached per dataset version)."""
        key = ("items", self.version, allo_number, contact_number, kind, direction, user_id, result,
               tuple(tags) if tags else None, day_from, day_to, sort, search)
        with self.lock:
            return self._cached(key, lambda: self._search_items(
                allo_number, contact_number, kind, direction, user_id, result, tags, day_from, day_to, sort,
                search))

    def _search_items(self, allo_number, contact_number, kind, direction, user_id, result, tags, day_from,
                      day_to, sort, search) -> list[Item]:
        lo, hi = 0, len(self._order)
        if day_from is not None:
            lo = bisect.bisect_left(self._order_ts, day_from)
        if day_to is not None:
            hi = bisect.bisect_left(self._order_ts, day_to + DAY)  # inclusive end of day
        if allo_number is not None and contact_number is not None and day_from is None and day_to is None:
            conv = self.convs.get((allo_number, contact_number))
            cands: Iterable[Item] = conv.items if conv else []
        else:
            cands = self._order[lo:hi]
        tagset = set(tags) if tags else None
        out = [it for it in cands
               if (allo_number is None or it.allo_number == allo_number)
               and (contact_number is None or it.contact_number == contact_number)
               and (kind is None or it.kind == kind)
               and (direction is None or it.direction == direction)
               and (user_id is None or it.user.id == user_id)
               and (result is None or (it.outcome and V2_RESULT[it.outcome] == result))
               and (tagset is None or (it.tags and tagset.intersection(it.tags)))]
        if search:
            terms = search
            scored = []
            for it in out:
                words = self._words(it)
                hits = [sum(1 for w in words if w.startswith(t)) for t in terms]
                if all(hits):
                    scored.append((sum(hits), it))
            if sort == "RELEVANCE":
                scored.sort(key=lambda x: (-x[0], -x[1].ts, x[1].id))
                return [it for _s, it in scored]
            out = [it for _s, it in scored]
        if sort == "DATE_ASC":
            return out
        out.reverse()
        return out

    def _words(self, it: Item) -> list[str]:
        parts = [it.summary or "", it.content or ""] + [t for *_x, t in self.transcript_rows(it)]
        return re.findall(r"\w+", " ".join(parts).lower())

    def calls_v1(self, allo_number: str, contact_number: str | None = None) -> list[Item]:
        """CALL items of one number, newest first (as live clients observe for v1)."""
        return self.search_items(allo_number=allo_number, contact_number=contact_number, kind="CALL")

    def crm_sorted(self, entity: str, sort: str) -> list:
        """CRM records in the requested order; ties broken by id so paging is stable."""
        with self.lock:
            return self._cached(("crm", self.version, entity, sort), lambda: self._crm_sorted(entity, sort))

    def _crm_sorted(self, entity: str, sort: str) -> list:
        if entity == "people":
            recs = list(self.persons)
            name = lambda r: (r.name or "").lower() + " " + (r.last_name or "").lower()  # noqa: E731
            activity = lambda r: self._activity_key(self._person_stats(r)[1], r.updated_ts)  # noqa: E731
            ident = lambda r: "per-" + r.suffix  # noqa: E731
        elif entity == "companies":
            recs = list(self.companies)
            name = lambda r: r.name.lower()  # noqa: E731
            activity = lambda r: self._activity_key(self._company_stats(r)[1], r.updated_ts)  # noqa: E731
            ident = lambda r: r.id  # noqa: E731
        else:
            recs = list(self.deals)
            name = lambda r: r.name.lower()  # noqa: E731
            activity = lambda r: (1, r.updated_ts)  # noqa: E731
            ident = lambda r: r.id  # noqa: E731
        if sort in ("NAME_ASC", "NAME_DESC"):
            recs.sort(key=lambda r: (name(r), ident(r)), reverse=sort == "NAME_DESC")
        elif sort in ("CREATED_ASC", "CREATED_DESC"):
            recs.sort(key=lambda r: (r.created_ts, ident(r)), reverse=sort == "CREATED_DESC")
        else:
            recs.sort(key=lambda r: (activity(r), ident(r)), reverse=sort != "DATE_ASC")
        return recs

    @staticmethod
    def _activity_key(last: int | None, updated: int) -> tuple[int, int]:
        # DATE sorts use the last activity; records that never had any sort after
        # (DESC) or before (ASC) all that did, by updated_at.
        return (1, last) if last is not None else (0, updated)

    def contacts_v1(self) -> list[Person]:
        """v1 address book order: creation time, then id (new contacts append at the end)."""
        with self.lock:
            return self._cached(("v1contacts", self.version),
                                lambda: sorted(self.persons, key=lambda p: (p.created_ts, p.suffix)))

    def analytics(self, day_from: int, day_to: int, cmp_from: int, cmp_to: int,
                  user_ids: list[str] | None, allo_numbers: list[str] | None) -> dict:
        """Team metrics over calls in [day_from, day_to] (inclusive UTC days) vs a comparison period."""
        with self.lock:
            def calls(lo: int, hi: int) -> list[Item]:
                i = bisect.bisect_left(self._order_ts, lo)
                j = bisect.bisect_left(self._order_ts, hi + DAY)
                return [it for it in self._order[i:j] if it.kind == "CALL"
                        and (not user_ids or it.user.id in user_ids)
                        and (not allo_numbers or it.allo_number in allo_numbers)]

            def metrics(items: list[Item]) -> dict[str, float]:
                total = len(items)
                answered = sum(1 for it in items if it.outcome == "ANSWERED")
                return {"calls": total, "talk_time_seconds": sum(it.duration or 0 for it in items),
                        "calls_over_1_min": sum(1 for it in items if (it.duration or 0) > 60),
                        "answer_rate": round(answered / total, 3) if total else 0.0}

            def mv(cur: float, prev: float) -> dict:
                change = round((cur - prev) / prev, 2) if prev else None
                return {"value": cur, "previous": prev, "change": change}

            cur_items, prev_items = calls(day_from, day_to), calls(cmp_from, cmp_to)
            cur, prev = metrics(cur_items), metrics(prev_items)
            summary = {"total_calls": mv(cur["calls"], prev["calls"]),
                       "talk_time_seconds": mv(cur["talk_time_seconds"], prev["talk_time_seconds"]),
                       "calls_over_1_min": mv(cur["calls_over_1_min"], prev["calls_over_1_min"]),
                       "answer_rate": mv(cur["answer_rate"], prev["answer_rate"])}
            breakdown = []
            for u in self.users:
                if user_ids and u.id not in user_ids:
                    continue
                uc = metrics([it for it in cur_items if it.user is u])
                up = metrics([it for it in prev_items if it.user is u])
                if u.status != "ACTIVE" and not uc["calls"] and not up["calls"]:
                    continue
                breakdown.append({"user": u.ref(), **{k: mv(uc[k], up[k]) for k in uc}})
            return {"date": {"from": day_str(day_from), "to": day_str(day_to)},
                    "compare_date": {"from": day_str(cmp_from), "to": day_str(cmp_to)},
                    "summary": summary, "breakdown": breakdown, "last_updated": fmt_z(self.now_ts)}

    # ------------------------------------------------------------ outbound analytics

    @staticmethod
    def ringing_seconds(it: Item) -> int:
        """How long an outbound call rang before it was picked up or gave up (not stored: from its id)."""
        return 4 + zlib.crc32(it.id.encode()) % 24

    @staticmethod
    def outbound_stage(it: Item, tags: Iterable[str] | None) -> int:
        """How far an outbound call went in the dial funnel: 0 dialled; 1 connected (a person answered;
        voicemail is not a connection); 2 conversation (connected, over one minute); 3 conversion (a
        conversation carrying one of the request's conversion ``tags``: none without tags)."""
        if it.outcome != "ANSWERED":
            return 0
        if (it.duration or 0) <= 60:
            return 1
        if tags and it.tags and set(tags).intersection(it.tags):
            return 3
        return 2

    def _outbound_calls(self, lo: int, hi: int, user_ids: list[str] | None,
                        allo_numbers: list[str] | None) -> list[Item]:
        i = bisect.bisect_left(self._order_ts, lo)
        j = bisect.bisect_left(self._order_ts, hi + DAY)
        return [it for it in self._order[i:j] if it.kind == "CALL" and it.direction == "OUTBOUND"
                and (not user_ids or it.user.id in user_ids)
                and (not allo_numbers or it.allo_number in allo_numbers)]

    def outbound_analytics(self, day_from: int, day_to: int, cmp_from: int, cmp_to: int,
                           user_ids: list[str] | None, allo_numbers: list[str] | None, *,
                           tags: list[str] | None = None, granularity: str = "DAY",
                           drilldown: tuple[str, int, int] | None = None) -> dict:
        """``POST /v2/api/analytics/outbound`` over the outbound calls in [day_from, day_to] (inclusive UTC
        days) vs a comparison period: funnel, time series, heatmap, leaderboard, time spent, and with
        ``drilldown`` = (stage, page, size) the calls behind a stage (``items``, v2 pagination)."""
        stages = ("dials", "connected", "conversations", "conversions")
        with self.lock:
            cur_items = self._outbound_calls(day_from, day_to, user_ids, allo_numbers)
            prev_items = self._outbound_calls(cmp_from, cmp_to, user_ids, allo_numbers)

            def figures(items: list[Item]) -> dict[str, float]:
                reached = [self.outbound_stage(it, tags) for it in items]
                talk = [it.duration or 0 for it, s in zip(items, reached) if s >= 2]
                out = {name: sum(1 for s in reached if s >= k) for k, name in enumerate(stages)}
                out["avg_ringing_time_seconds"] = (
                    round(sum(self.ringing_seconds(it) for it in items) / len(items), 1) if items else 0)
                out["avg_conversation_time_seconds"] = round(sum(talk) / len(talk), 1) if talk else 0
                out["total_conversation_time_seconds"] = sum(talk)
                return out

            def mv(cur: float, prev: float) -> dict:
                change = round((cur - prev) / prev, 2) if prev else None
                return {"value": cur, "previous": prev, "change": change}

            cur, prev = figures(cur_items), figures(prev_items)
            dials = cur["dials"]
            funnel = {name: {"count": mv(cur[name], prev[name]),
                             "rate": round(cur[name] / dials, 3) if dials else None} for name in stages}
            time_spent = {name: mv(cur[name], prev[name]) for name in
                          ("avg_ringing_time_seconds", "avg_conversation_time_seconds",
                           "total_conversation_time_seconds")}

            # time series: one point per bucket (day, Monday-started week, month) of the range, empty ones too
            def bucket(ts: int) -> str:
                d = datetime.fromtimestamp(ts, timezone.utc).date()
                if granularity == "WEEK":
                    d = date.fromordinal(d.toordinal() - d.weekday())
                elif granularity == "MONTH":
                    d = d.replace(day=1)
                return d.isoformat()

            buckets: dict[str, list[int]] = {}
            for ts in range(day_from, day_to + DAY, DAY):
                buckets.setdefault(bucket(ts), [0, 0, 0])
            for it in cur_items:
                counts = buckets[bucket(it.ts)]
                s = self.outbound_stage(it, tags)
                counts[0] += 1
                counts[1] += s >= 1
                counts[2] += s >= 3
            series = {
                "dials": [{"date": b, "value": c[0]} for b, c in buckets.items()],
                "connected": [{"date": b, "value": c[1]} for b, c in buckets.items()],
                "connection_rate": [{"date": b, "value": round(c[1] / c[0], 3) if c[0] else 0}
                                    for b, c in buckets.items()],
                "conversions": [{"date": b, "value": c[2]} for b, c in buckets.items()],
            }

            # heatmap: cells (weekday, UTC hour) with at least one dial; connection_rate in percent
            cells: dict[tuple[int, int], list[int]] = {}
            for it in cur_items:
                t = time.gmtime(it.ts)
                c = cells.setdefault((t.tm_wday, t.tm_hour), [0, 0])
                c[0] += 1
                c[1] += self.outbound_stage(it, tags) >= 1
            weekdays = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
            ordered = sorted(cells.items())
            heatmap = {
                "dials": [{"day": weekdays[d], "hour": h, "value": c[0]} for (d, h), c in ordered],
                "connected": [{"day": weekdays[d], "hour": h, "value": c[1]} for (d, h), c in ordered],
                "connection_rate": [{"day": weekdays[d], "hour": h, "value": round(100 * c[1] / c[0])}
                                    for (d, h), c in ordered],
            }

            # leaderboard: every user who dialled in the range, most connected calls first
            per_user: dict[str, list] = {}
            for it in cur_items:
                entry = per_user.setdefault(it.user.id, [it.user, 0])
                entry[1] += self.outbound_stage(it, tags) >= 1
            leaderboard = [{"user": u.ref(), "connected": n}
                           for u, n in sorted(per_user.values(), key=lambda e: (-e[1], e[0].name, e[0].id))]

            data = {"date": {"from": day_str(day_from), "to": day_str(day_to)},
                    "compare_date": {"from": day_str(cmp_from), "to": day_str(cmp_to)},
                    "funnel": funnel, "time_series": series, "heatmap": heatmap, "leaderboard": leaderboard,
                    "time_spent": time_spent, "last_updated": fmt_z(self.now_ts)}
            if drilldown is not None:
                stage_name, page, size = drilldown
                wanted = ("DIAL", "CONNECTED", "CONVERSATION", "CONVERSION").index(stage_name)
                rows = [it for it in reversed(cur_items) if self.outbound_stage(it, tags) >= wanted]
                total_pages = math.ceil(len(rows) / size)
                data["items"] = {
                    "data": [self.outbound_drilldown_view(it, tags) for it in rows[(page - 1) * size: page * size]],
                    "pagination": {"page": page, "size": size, "total_count": len(rows),
                                   "total_pages": total_pages, "has_more": page < total_pages}}
            return data

    def outbound_drilldown_view(self, it: Item, tags: Iterable[str] | None) -> dict:
        """OutboundDrilldownItem: the call, the furthest funnel stage it reached."""
        number = self.numbers_by_number.get(it.allo_number)
        return {"id": it.id, "user": it.user.ref(), "allo_number": it.allo_number,
                "allo_number_label": number.name if number else None, "contact_number": it.contact_number,
                "stage": ("DIAL", "CONNECTED", "CONVERSATION", "CONVERSION")[self.outbound_stage(it, tags)],
                "voicemail": it.outcome == "VOICEMAIL", "duration": it.duration, "date": fmt_z(it.ts)}

    # ------------------------------------------------------------ analytics truth

    def analytics_days(self, first_day: Any = None, last_day: Any = None) -> list[int]:
        """The UTC midnights a sync of the daily analytics streams reads, by default what a sync started now
        with the dataset's start as start_date reads: from that day (but at most 365 days back) through
        today (the real clock, UTC)."""
        def as_ts(value: Any) -> int:
            return parse_day(value.isoformat() if isinstance(value, date) else value)

        today = int(time.time()) // DAY * DAY
        first = as_ts(first_day) if first_day is not None else max(self.start_ts // DAY * DAY, today - 365 * DAY)
        last = as_ts(last_day) if last_day is not None else today
        return list(range(first, last + DAY, DAY))

    def _analytics_truth(self, stream: str, first_day: Any, last_day: Any) -> list[dict]:
        """One team row (user_id "team", like the connector's) and one row per user a day, each metric
        the number of its MetricValue."""
        rows: list[dict] = []
        for day in self.analytics_days(first_day, last_day):
            d = day_str(day)
            if stream == "team_metrics_daily":
                data = self.analytics(day, day, day - DAY, day - DAY, None, None)
                team = {k: v["value"] for k, v in data["summary"].items()}
                users = [(e["user"], {k: v["value"] for k, v in e.items() if k != "user"}) for e in data["breakdown"]]
            else:
                data = self.outbound_analytics(day, day, day - DAY, day - DAY, None, None)
                team = {}
                for name, stage in data["funnel"].items():
                    team[name] = stage["count"]["value"]
                    team[f"{name}_rate"] = stage["rate"]
                team.update({k: v["value"] for k, v in data["time_spent"].items()})
                users = [(e["user"], {"connected": e["connected"]}) for e in data["leaderboard"]]
            rows.append({"date": d, "scope": "team", "user_id": TEAM_ROW_USER_ID, "user": None, **team,
                         "last_updated": data["last_updated"]})
            rows.extend({"date": d, "scope": "user", "user_id": user["id"], "user": user, **figures,
                         "last_updated": data["last_updated"]} for user, figures in users)
        return rows

    # ------------------------------------------------------------ mutation

    def add_activity(self, n: int = 5, now: Any = None, allo_number: str | None = None,
                     move_share: float = 0.6) -> dict:
        """Add ``n`` calls/SMS strictly newer than anything existing.

        About ``move_share`` (60%) land on existing conversations (moving them
        to the top); the rest start new conversations, half with new
        address-book contacts, half with unknown numbers. New calls have a
        pending AI summary (null). Advances ``now`` by at least 1 s. Returns the
        new item ids, the conversation keys touched, the v1 ids of the new calls
        and of the v1 contacts whose data changed (all also recorded in
        ``touched()``).
        """
        rng = self._mut_rng
        known_below = move_share + (1 - move_share) / 2
        with self.lock:
            newest = self._order_ts[-1] if self._order_ts else self.now_ts
            start = max(self.now_ts + 1, newest + 1)
            if now is not None:
                t = int(now.timestamp()) if isinstance(now, datetime) else int(math.ceil(parse_instant(now)))
                start = max(start, t)
            if allo_number and allo_number not in self.numbers_by_number:
                raise KeyError(f"unknown allo_number {allo_number!r}")
            targets = [self.numbers_by_number[allo_number]] if allo_number else self.numbers
            new_ids: list[str] = []
            new_calls: list[str] = []
            contacts: dict[str, None] = {}
            touched: list[tuple[str, str]] = []
            touched_numbers: set[str] = set()
            ts = start
            for i in range(n):
                ts = start + i
                a = rng.choice(targets)
                existing = self._conv_order.get(a.number) or []
                r = rng.random()
                if existing and r < move_share:
                    conv = rng.choice(existing)
                    contact = conv.contact_number
                else:
                    country = a.country if rng.random() < 0.85 else rng.choice(["US", "FR", "GB"])
                    contact = self._new_contact_number(rng, country)
                    if r < known_below:
                        pr = self._new_person(rng, [contact], ts - 1)
                        self.persons.append(pr)
                        self.book[contact] = [pr]
                    conv = Conversation()
                    conv.allo_number, conv.contact_number, conv.items = a.number, contact, []
                    self.convs[(a.number, contact)] = conv
                it = self._new_item(rng, a, contact, ts, generated=False)
                conv.items.append(it)
                self.items_by_id[it.id] = it
                self._order.append(it)  # strictly newest: the index stays sorted
                self._order_ts.append(it.ts)
                st = self._contact_stats.setdefault(contact, [0, 0])
                st[0] += 1
                st[1] = max(st[1], it.ts)
                new_ids.append(it.id)
                if it.kind == "CALL":
                    new_calls.append(self.v1_call_id(it))
                for pr in self.book.get(contact, ()):
                    contacts["cnt_" + pr.suffix] = None
                    pr.updated_ts = max(pr.updated_ts, ts)  # its activity, engagement and context changed
                if (a.number, contact) not in touched:
                    touched.append((a.number, contact))
                touched_numbers.add(a.number)
            self.now_ts = max(self.now_ts + 1, ts)
            for num in touched_numbers:
                self._rebuild_conv_order(num)
            self._invalidate()
            out = {"items": new_ids, "conversations": touched, "calls": new_calls, "contacts": list(contacts)}
            self._touch(out)
            return out

    # ------------------------------------------------------------ touched

    def _touch(self, changes: dict) -> None:
        for kind, values in changes.items():
            bucket = self._touched[kind]
            for v in values:
                bucket[tuple(v) if isinstance(v, list) else v] = None

    def touched(self) -> dict:
        """What activity, new numbers and deletions changed since the last ``reset_touched()``.

        ``conversations``: keys ``(allo_number, contact_number)`` moved, created or deleted;
        ``items``: new conversation item ids; ``calls``: v1 ids of new calls; ``contacts``:
        v1 contact ids created or whose activity changed; ``numbers``: Allo numbers added.
        A row not listed here kept its data and can only have moved down its list (or, for
        v1 contacts, stayed in place). Late AI summaries (``fill_pending_summaries``) are not
        activity and are not listed.
        """
        with self.lock:
            return {kind: list(bucket) for kind, bucket in self._touched.items()}

    def reset_touched(self) -> dict:
        """Forget what was touched; returns what had been."""
        with self.lock:
            out = self.touched()
            self._touched = {kind: {} for kind in TOUCHED_KINDS}
            return out

    # ------------------------------------------------------------ new numbers

    def add_number(self, number: str, conversations: int = 100, items: int | None = None,
                   name: str | None = None, newest_days_ago: float = 2) -> dict:
        """A new Allo number appears in the workspace with its own history.

        ``conversations`` conversations (new contacts, ~70% in the address book) with
        ``items`` calls/SMS in all (default 2.5 per conversation), all dated in the past
        between the dataset's start and ``newest_days_ago`` days before ``now`` (older than a
        usual lookback). The number is listed by GET /v2/api/numbers and /v1/api/numbers and
        served by conversations, items search and v1 calls, and appears in ``truth()``.
        Deterministic for a given (seed, number). Returns what ``touched()`` records.
        """
        if not isinstance(number, str) or not E164.match(number):
            raise ValueError(f"not an E.164 number: {number!r}")
        if isinstance(conversations, bool) or not isinstance(conversations, int) or conversations < 1:
            raise ValueError("conversations must be a positive integer")
        n_items = conversations * 5 // 2 if items is None else int(items)
        if n_items < conversations:
            raise ValueError("items must be at least the number of conversations")
        with self.lock:
            if number in self.numbers_by_number:
                raise ValueError(f"{number} is already a number of this workspace")
            newest = int(self.now_ts - newest_days_ago * DAY)
            if newest <= self.start_ts:
                raise ValueError("newest_days_ago leaves no room for history in the dataset's range")
            rng = random.Random(f"number:{self.seed}:{number}")
            meta = next((v for v in vocab.ALLO_NUMBERS if v[0] == number), None)
            a = AlloNumber()
            a.number, a.type = number, "NUMBER"
            a.name = name or (meta[1] if meta else f"Line {number[-4:]}")
            a.country = meta[2] if meta else "US"
            a.capabilities = list(meta[3]) if meta else ["VOICE", "SMS"]
            a.lang = meta[4] if meta else "en"
            active = [u for u in self.users if u.status == "ACTIVE"]
            a.users = rng.sample(active, min(2, len(active))) if active else self.users[:1]
            self.numbers.append(a)
            self.numbers_by_number[number] = a
            self._used_numbers.add(number)
            per_conv = [1] * conversations
            for idx in rng.choices(range(conversations), k=n_items - conversations):
                per_conv[idx] += 1
            keys: list[tuple[str, str]] = []
            new_ids: list[str] = []
            calls: list[str] = []
            contacts: list[str] = []
            for k in per_conv:
                country = a.country if rng.random() < 0.85 else rng.choice(["US", "FR", "GB"])
                contact = self._new_contact_number(rng, country)
                times = sorted(rng.randint(self.start_ts, newest) for _ in range(k))
                if rng.random() < 0.7:
                    pr = self._new_person(rng, [contact], times[0] - rng.randint(1, 30 * DAY))
                    pr.updated_ts = self.now_ts  # entered the address book now, with past history
                    self.persons.append(pr)
                    self.book[contact] = [pr]
                    contacts.append("cnt_" + pr.suffix)
                conv = Conversation()
                conv.allo_number, conv.contact_number, conv.items = number, contact, []
                for ts in times:
                    it = self._new_item(rng, a, contact, ts, generated=True)
                    conv.items.append(it)
                    self.items_by_id[it.id] = it
                    new_ids.append(it.id)
                    if it.kind == "CALL":
                        calls.append(self.v1_call_id(it))
                    st = self._contact_stats.setdefault(contact, [0, 0])
                    st[0] += 1
                    st[1] = max(st[1], it.ts)
                conv.items.sort(key=Item.sort_key)
                self.convs[(number, contact)] = conv
                keys.append((number, contact))
            self._order = sorted(self.items_by_id.values(), key=Item.sort_key)
            self._order_ts = [it.ts for it in self._order]
            self._rebuild_conv_order(number)
            self._invalidate()
            out = {"numbers": [number], "conversations": keys, "items": new_ids, "calls": calls,
                   "contacts": contacts}
            self._touch(out)
            return out

    def fill_pending_summaries(self) -> list[str]:
        """Fill every pending (null) call summary; dates and last_activity do not move."""
        with self.lock:
            filled = []
            for it in self._order:
                if it.kind == "CALL" and it.summary is None:
                    it.summary = self.summary_text(it)
                    filled.append(it.id)
            if filled:
                self._invalidate()
            return filled

    def delete_conversation(self, allo_number: str, contact_number: str) -> int:
        """Remove a conversation and its items; returns how many items went. KeyError if absent."""
        with self.lock:
            conv = self.convs.pop((allo_number, contact_number))
            gone = {it.id for it in conv.items}
            for ident in gone:
                del self.items_by_id[ident]
            self._order = [it for it in self._order if it.id not in gone]
            self._order_ts = [it.ts for it in self._order]
            st = [0, 0]
            for c in self.convs.values():
                if c.contact_number == contact_number:
                    st[0] += len(c.items)
                    st[1] = max(st[1], c.last_ts)
            self._contact_stats[contact_number] = st
            self._rebuild_conv_order(allo_number)
            self._invalidate()
            self._touch({"conversations": [(allo_number, contact_number)],
                         "contacts": ["cnt_" + pr.suffix for pr in self.book.get(contact_number, ())]})
            return len(gone)

    # ------------------------------------------------------------ truth

    def truth(self, stream: str, first_day: Any = None, last_day: Any = None) -> list[dict]:
        """What a correct full read of ``stream`` yields (plain JSON-ready dicts, copies). For the daily
        analytics streams, ``first_day`` / ``last_day`` (dates or YYYY-MM-DD) give the days read; by default
        those of a sync started now from the dataset's start (see ``analytics_days``)."""
        with self.lock:
            if stream in ANALYTICS_STREAMS:
                rows = self._analytics_truth(stream, first_day, last_day)
            else:
                rows = self._truth(stream)
            return json.loads(json.dumps(rows, ensure_ascii=False))

    def _truth(self, stream: str) -> list[dict]:
        if stream == "conversations":
            return [{"allo_number": a.number, **self.conversation_view(c)}
                    for a in self.numbers for c in self._conv_order[a.number]]
        if stream == "conversation_items":
            return [self.item_view(it) for it in reversed(self._order)]
        if stream == "phone_numbers":
            return self.phone_numbers_view()
        if stream == "users":
            return self.users_view("ACTIVE") + self.users_view("BLOCKED")
        if stream == "tags":
            return self.tags
        if stream == "summary_templates":
            return self.summary_templates
        if stream == "webhooks":
            return [{k: v for k, v in w.items() if k != "signing_secret"} for w in self.webhooks]
        if stream == "webhook_event_types":
            return self.webhook_event_types
        if stream == "crm_people":
            return [self.crm_person_view(p) for p in self._crm_sorted("people", "DATE_DESC")]
        if stream == "crm_companies":
            return [self.crm_company_view(c) for c in self._crm_sorted("companies", "DATE_DESC")]
        if stream == "crm_deals":
            return [self.crm_deal_view(d) for d in self._crm_sorted("deals", "DATE_DESC")]
        if stream == "contacts":
            return [self.v1_contact_view(p) for p in self.contacts_v1()]
        if stream == "contact_details":
            # changed_at: the later of the listed updated_at and last_activity_date (as the connector writes it)
            return [{**self.v1_contact_context_view(p),
                     "changed_at": max(fmt_local(p.updated_ts) or "", fmt_local(self._person_stats(p)[1]) or "")}
                    for p in self.contacts_v1()]
        if stream == "calls":
            return [{"allo_number": a.number, **self.v1_call_view(it)}
                    for a in self.numbers for it in self.calls_v1(a.number)]
        raise KeyError(f"unknown stream {stream!r}; known: {', '.join(TRUTH_STREAMS)}")
