"""A realistic, deterministic SenangKira data set: Malaysian SMEs invoicing their clients.

Each user gets 8-20 clients, quotes and invoices for every month since they joined (about 14 months
back), SST at 6 or 8 %, 30-day payment terms, every invoice and quote status (invoices past their due date
that nobody marked ``overdue`` included, as in real SenangKira data), and expenses in all twelve
categories, rent and utilities recurring monthly. The same ``seed``, user index and ``today`` always give
the same rows, ids included.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from skqueue.dashboard.schema import EXPENSE_CATEGORIES, Schema

CENT = Decimal("0.01")
FIRST = ("Ahmad", "Siti", "Wei Ling", "Rajesh", "Nurul", "Kok Wai", "Priya", "Hafiz", "Mei Ling", "Arjun", "Aisyah",
         "Jun Hao", "Farah", "Kumar", "Zulkifli", "Hui Min")
LAST = ("Abdullah", "Tan", "Lim", "Krishnan", "Ismail", "Wong", "Raj", "Hassan", "Lee", "Ng", "Rahman", "Chong")
WORDS = ("Maju", "Jaya", "Bintang", "Cahaya", "Setia", "Harmoni", "Gemilang", "Mutiara", "Sinar", "Delima",
         "Pelangi", "Wawasan", "Bestari", "Murni", "Sejahtera", "Warisan")
TRADES = ("Teknologi", "Logistik", "Trading", "Engineering", "Consultancy", "Hartanah", "Digital", "Kreatif",
          "Solutions", "Resources", "Ventures", "Industries", "Catering", "Printing")
FORMS = ("Sdn Bhd", "Sdn Bhd", "Sdn Bhd", "Enterprise", "PLT", "Bhd")
CITIES = (("Kuala Lumpur", "50450", "Wilayah Persekutuan"), ("Petaling Jaya", "46050", "Selangor"),
          ("Shah Alam", "40000", "Selangor"), ("George Town", "10200", "Pulau Pinang"),
          ("Johor Bahru", "80000", "Johor"), ("Ipoh", "30000", "Perak"), ("Kota Kinabalu", "88000", "Sabah"),
          ("Kuching", "93000", "Sarawak"), ("Melaka", "75000", "Melaka"))
SERVICES = ("Website development", "Mobile app maintenance", "Logo and brand design", "Social media management",
            "Bookkeeping (monthly)", "SST filing", "Network installation", "CCTV maintenance",
            "Corporate video production", "Event catering", "Printing of brochures", "IT support retainer",
            "SEO audit", "Cloud hosting (annual)", "Staff training workshop", "Interior renovation works")
EXPENSE_TEXT = {
    "office_supplies": ("Stationery from Popular", "Printer toner", "A4 paper, 10 reams"),
    "travel": ("Flight KUL-PEN for client meeting", "Grab rides, client visits", "Toll and petrol, Johor trip"),
    "meals": ("Client lunch, nasi kandar", "Team dinner", "Kopitiam meeting with supplier"),
    "utilities": ("TNB electricity bill", "Unifi fibre broadband", "Air Selangor water bill"),
    "rent": ("Office rent, shoplot",),
    "marketing": ("Facebook ads campaign", "Google Ads", "Booth at SME expo"),
    "software": ("Microsoft 365 subscription", "Adobe Creative Cloud", "Accounting software licence"),
    "equipment": ("Laptop for designer", "Office chair", "External monitors"),
    "professional": ("Company secretary fee", "Audit fee", "Legal consultation"),
    "insurance": ("Office fire insurance", "Group medical insurance"),
    "taxes": ("SST payment to RMCD", "Stamp duty", "Income tax instalment (CP204)"),
    "other": ("Courier charges", "Bank charges", "Festive hampers for clients"),
}
EXPENSE_CAPS = {"meals": 500}  # SenangKira's validation: meals <= 500 (travel <= 10,000)
OCCASIONAL = tuple(c for c in EXPENSE_CATEGORIES if c != "rent")  # rent is only the monthly recurring one
QUANTITIES = (1, 1, 1, 1, 2, 2, 3, 4, 5, 10)
SST_CHANGE = date(2024, 3, 1)  # service tax went from 6 % to 8 %


@dataclass
class Rows:
    """The rows of one user, per table, in insertion order."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {
        name: [] for name in ("users", "clients", "quotes", "quote_items", "invoices", "invoice_items", "expenses")})

    def add(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        self.tables[table].append(row)
        return row


class Generator:
    """The rows of user number ``index`` for ``seed``, as of ``today``."""

    def __init__(self, seed: int, index: int, today: date, id_kind: str, next_int: Callable[[str], int]) -> None:
        self.rng = random.Random(f"senangkira:{seed}:{index}")
        self.index = index
        self.today = today
        self.id_kind = id_kind
        self.next_int = next_int
        self.rows = Rows()
        self.now = datetime.combine(today, time(23, 59), UTC)

    def new_id(self, table: str) -> uuid.UUID | int:
        if self.id_kind == "int":
            return self.next_int(table)
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def stamp(self, day: date) -> datetime:
        moment = datetime.combine(day, time(self.rng.randint(1, 11), self.rng.randint(0, 59)), UTC)
        return min(moment, self.now)

    def day_in(self, first: date, last: date) -> date:
        return first + timedelta(days=self.rng.randint(0, max(0, (last - first).days)))

    def days(self, first: date, last: date, count: int) -> list[date]:
        """``count`` days in ``[first, last]``, in order (documents are numbered by date)."""
        return sorted(self.day_in(first, last) for _ in range(count))

    def money(self, low: int, high: int) -> Decimal:
        return (Decimal(self.rng.randint(low * 100, high * 100)) / 100).quantize(CENT)

    def generate(self) -> Rows:
        user = self.user()
        joined = user["date_joined"].date()
        clients = [self.client(user["id"], joined, i) for i in range(self.rng.randint(8, 20))]
        month = date(joined.year, joined.month, 1)
        while month <= self.today:
            last = min(_month_end(month), self.today)
            quotes = [self.quote(user["id"], clients, day, n)
                      for n, day in enumerate(self.days(max(month, joined), last, self.rng.randint(2, 6)))]
            approved = [quote for quote in quotes if quote["status"] == "approved"]
            for day in self.days(max(month, joined), last, self.rng.randint(5, 10)):
                source = approved.pop(0) if approved and approved[0]["issue_date"] <= day and self.rng.random() < 0.6 \
                    else None
                self.invoice(user["id"], clients, day, source)
            self.expenses(user["id"], month, last, first_month=month <= joined)
            month = _month_end(month) + timedelta(days=1)
        return self.rows

    def user(self) -> dict[str, Any]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        company = f"{self.rng.choice(WORDS)} {self.rng.choice(TRADES)} {self.rng.choice(FORMS)}"
        city, postcode, state = self.rng.choice(CITIES)
        joined = self.stamp(self.today - timedelta(days=self.rng.randint(400, 450)))
        slug = first.lower().replace(" ", "")
        return self.rows.add("users", {
            "id": self.new_id("users"), "password": "!", "is_superuser": False, "username": f"{slug}{self.index}",
            "first_name": first, "last_name": last, "email": f"{slug}.{last.lower()}{self.index}@example.com.my",
            "is_staff": False, "is_active": True, "date_joined": joined, "company_name": company,
            "company_address": f"{self.rng.randint(1, 99)}, Jalan {self.rng.choice(WORDS)} {self.rng.randint(1, 9)}, "
                               f"{postcode} {city}, {state}",
            "company_logo": None, "last_login": None,
        })

    def client(self, owner: Any, joined: date, n: int) -> dict[str, Any]:
        name = f"{self.rng.choice(WORDS)} {self.rng.choice(TRADES)} {self.rng.choice(FORMS)}"
        city, postcode, state = self.rng.choice(CITIES)
        created = self.stamp(self.day_in(joined, max(joined, self.today - timedelta(days=20))))
        return self.rows.add("clients", {
            "id": self.new_id("clients"), "name": name,
            "email": f"accounts{n}@{name.split(maxsplit=1)[0].lower()}{n}.com.my",
            "phone": f"+60 1{self.rng.randint(0, 9)}-{self.rng.randint(100, 999)} {self.rng.randint(1000, 9999)}",
            "address": f"Lot {self.rng.randint(1, 300)}, {postcode} {city}, {state}", "company": name,
            "tax_id": f"C{self.rng.randint(10**9, 10**10 - 1)}", "notes": None,
            "is_active": self.rng.random() < 0.9, "created_at": created, "updated_at": created, "owner_id": owner,
        })

    def lines(self, table: str, parent: str, parent_id: Any, template: list[dict[str, Any]] | None = None
              ) -> Decimal:
        items = template or [{"description": self.rng.choice(SERVICES),
                              "quantity": Decimal(self.rng.choice(QUANTITIES)), "unit_price": self.money(50, 500)}
                             for _ in range(self.rng.randint(1, 5))]
        subtotal = Decimal(0)
        for order, item in enumerate(items):
            self.rows.add(table, {"id": self.new_id(table), "description": item["description"],
                                  "quantity": item["quantity"], "unit_price": item["unit_price"],
                                  "sort_order": order, f"{parent}_id": parent_id})
            subtotal += (item["quantity"] * item["unit_price"]).quantize(CENT, ROUND_HALF_UP)
        return subtotal

    def totals(self, subtotal: Decimal, rate: Decimal) -> dict[str, Decimal]:
        tax = (subtotal * rate).quantize(CENT, ROUND_HALF_UP)
        return {"subtotal": subtotal, "tax_rate": rate, "tax_amount": tax, "total_amount": subtotal + tax}

    def sst(self, day: date) -> Decimal:
        return Decimal("0.06") if day < SST_CHANGE or self.rng.random() < 0.2 else Decimal("0.08")

    def quote(self, owner: Any, clients: list[dict[str, Any]], day: date, n: int) -> dict[str, Any]:
        quote_id, valid = self.new_id("quotes"), day + timedelta(days=30)
        number = f"QT-{day.year}-{len(self.rows.tables['quotes']) + 1:04d}"
        subtotal = self.lines("quote_items", "quote", quote_id)
        created = self.stamp(day)
        return self.rows.add("quotes", {
            "id": quote_id, "quote_number": number, "status": self.quote_status(day, valid),
            "title": f"Quotation {n + 1}",
            "notes": None, "terms": "Valid for 30 days.", "issue_date": day, "valid_until": valid,
            **self.totals(subtotal, self.sst(day)), "created_at": created, "updated_at": created,
            "sent_at": created + timedelta(hours=1), "owner_id": owner, "client_id": self.rng.choice(clients)["id"],
        })

    def quote_status(self, day: date, valid: date) -> str:
        if (self.today - day).days < 7:
            return self.rng.choice(("draft", "sent"))
        roll = self.rng.random()
        if roll < 0.45:
            return "approved"
        if roll < 0.65:
            return "declined"
        if roll < 0.85 and valid < self.today:
            return "expired"
        return self.rng.choice(("sent", "draft"))

    def invoice(self, owner: Any, clients: list[dict[str, Any]], day: date, quote: dict[str, Any] | None) -> None:
        invoice_id, due = self.new_id("invoices"), day + timedelta(days=30)
        template = [item for item in self.rows.tables["quote_items"] if quote and item["quote_id"] == quote["id"]]
        subtotal = self.lines("invoice_items", "invoice", invoice_id, template or None)
        status, paid_at = self.invoice_status(day, due)
        created = self.stamp(day)
        self.rows.add("invoices", {
            "id": invoice_id, "invoice_number": f"INV-{day.year}-{len(self.rows.tables['invoices']) + 1:04d}",
            "status": status, "title": quote["title"] if quote else "Tax invoice", "notes": None,
            "terms": "Payment due within 30 days.", "issue_date": day, "due_date": due,
            **self.totals(subtotal, quote["tax_rate"] if quote else self.sst(day)),
            "created_at": created, "updated_at": paid_at or created,
            "sent_at": None if status == "draft" else created + timedelta(hours=2), "paid_at": paid_at,
            "owner_id": owner, "client_id": quote["client_id"] if quote else self.rng.choice(clients)["id"],
            "source_quote_id": quote["id"] if quote else None,
        })

    def invoice_status(self, day: date, due: date) -> tuple[str, datetime | None]:
        age, roll = (self.today - day).days, self.rng.random()
        if age < 3:
            return self.rng.choice(("draft", "sent")), None
        choices: tuple[tuple[str, float], ...]
        if due >= self.today:
            choices = (("sent", 0.4), ("viewed", 0.7), ("paid", 0.95), ("cancelled", 1.0))
        else:
            choices = (("paid", 0.85), ("overdue", 0.9), ("sent", 0.93), ("viewed", 0.95), ("cancelled", 1.0))
        status = next(name for name, upto in choices if roll < upto)
        if status != "paid":
            return status, None
        return status, self.stamp(self.day_in(day + timedelta(days=1), min(due + timedelta(days=20), self.today)))

    def expenses(self, owner: Any, month: date, last: date, *, first_month: bool) -> None:
        fixed = [("rent", month, self.money(1500, 4000)),
                 ("utilities", month + timedelta(days=9), self.money(150, 600)),
                 ("software", month + timedelta(days=14), self.money(50, 400))]
        for category, day, amount in fixed:
            if day <= last and not first_month:
                self.expense(owner, category, day, amount, recurring=True)
        for _ in range(self.rng.randint(8, 15)):
            category = self.rng.choice(OCCASIONAL)
            amount = self.money(10, EXPENSE_CAPS.get(category, 1000))
            self.expense(owner, category, self.day_in(month, last), amount, recurring=False)

    def expense(self, owner: Any, category: str, day: date, amount: Decimal, *, recurring: bool) -> None:
        created = self.stamp(day)
        self.rows.add("expenses", {
            "id": self.new_id("expenses"), "description": self.rng.choice(EXPENSE_TEXT[category]), "amount": amount,
            "date": day, "category": category, "receipt_image": None, "notes": None,
            "is_reimbursable": self.rng.random() < 0.4, "is_recurring": recurring, "created_at": created,
            "updated_at": created, "owner_id": owner,
        })


def _month_end(day: date) -> date:
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


async def seed(engine: AsyncEngine, tables: Schema, users: int, *, seed: int = 1, today: date,
               progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Add ``users`` generated users (numbered after the existing ones); returns the row counts."""
    async with engine.connect() as conn:
        existing = int((await conn.execute(select(func.count()).select_from(tables.users))).scalar_one())
        next_int = await _int_ids(conn, tables) if tables.id_kind == "int" else _no_ints
    counts: dict[str, int] = {}
    for done, index in enumerate(range(existing, existing + users), start=1):
        rows = Generator(seed, index, today, tables.id_kind, next_int).generate()
        async with engine.begin() as conn:
            for name, values in rows.tables.items():
                if values:
                    await conn.execute(insert(getattr(tables, name)), values)
                counts[name] = counts.get(name, 0) + len(values)
        if progress is not None:
            progress(done, users)
    return counts


def _no_ints(table: str) -> int:
    raise AssertionError("integer ids requested for a UUID schema")


async def _int_ids(conn: Any, tables: Schema) -> Callable[[str], int]:
    """Explicit integer ids continuing after each table's highest one."""
    last: dict[str, int] = {}
    for name in Rows().tables:
        table = getattr(tables, name)
        last[name] = int((await conn.execute(select(func.coalesce(func.max(table.c.id), 0)))).scalar_one())

    def next_int(table: str) -> int:
        last[table] += 1
        return last[table]

    return next_int
