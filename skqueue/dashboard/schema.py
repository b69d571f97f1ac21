"""The SenangKira tables, with the original Django app's table and column names.

The first eight tables are the ones SenangKira's migrations create (``auth_user``, ``clients_client``,
``invoicing_*``, ``expenses_expense``, ``dashboard_dashboardsnapshot``), so the tasks can read an existing
SenangKira PostgreSQL database. The last three are skqueue's own (in-app notifications, exports,
performance reports); ``skqueue db init`` adds whatever is missing and leaves existing tables alone.

SenangKira's primary keys are UUIDs. A database whose ``auth_user.id`` is an integer (a SenangKira fork on
Django's default ``AutoField``) is read with the ``"int"`` variant of the schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.types import TypeEngine

ID_KINDS = ("uuid", "int")
INVOICE_STATUSES = ("draft", "sent", "viewed", "paid", "overdue", "cancelled")
QUOTE_STATUSES = ("draft", "sent", "approved", "declined", "expired")
EXPENSE_CATEGORIES = ("office_supplies", "travel", "meals", "utilities", "rent", "marketing", "software",
                      "equipment", "professional", "insurance", "taxes", "other")
NOTIFICATION_TYPES = ("info", "warning", "alert")


@dataclass(frozen=True)
class Schema:
    """Every table, for one kind of id (``"uuid"`` or ``"int"``)."""

    id_kind: str
    metadata: MetaData
    users: Table
    clients: Table
    quotes: Table
    quote_items: Table
    invoices: Table
    invoice_items: Table
    expenses: Table
    snapshots: Table
    notifications: Table
    exports: Table
    reports: Table


def _money(name: str, digits: int = 10) -> Column[Any]:
    return Column(name, Numeric(digits, 2), nullable=False, default=0)


def _stamp(name: str, nullable: bool = False) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


def _owner(id_type: TypeEngine[Any]) -> Column[Any]:
    return Column("owner_id", id_type, ForeignKey("auth_user.id", ondelete="CASCADE"), nullable=False)


def _pk(id_type: TypeEngine[Any]) -> Column[Any]:
    return Column("id", id_type, primary_key=True, autoincrement=not isinstance(id_type, Uuid))


@cache
def schema(id_kind: str = "uuid") -> Schema:
    """The tables for ``id_kind`` (built once per kind; no I/O)."""
    if id_kind not in ID_KINDS:
        raise ValueError(f"id kind must be uuid or int, not {id_kind!r}")
    # SQLite numbers rows itself only for a column declared exactly INTEGER PRIMARY KEY.
    ident: TypeEngine[Any] = Uuid() if id_kind == "uuid" else BigInteger().with_variant(Integer(), "sqlite")
    md = MetaData()
    users = _users(md, ident)
    clients = _clients(md, ident)
    quotes, quote_items = _quotes(md, ident)
    invoices, invoice_items = _invoices(md, ident)
    return Schema(id_kind, md, users, clients, quotes, quote_items, invoices, invoice_items, _expenses(md, ident),
                  _snapshots(md, ident), *_own_tables(md, ident))


def _users(md: MetaData, ident: TypeEngine[Any]) -> Table:
    return Table(
        "auth_user", md, _pk(ident),
        Column("password", String(128), nullable=False, default=""),
        _stamp("last_login", nullable=True),
        Column("is_superuser", Boolean, nullable=False, default=False),
        Column("username", String(150), nullable=False, unique=True),
        Column("first_name", String(150), nullable=False, default=""),
        Column("last_name", String(150), nullable=False, default=""),
        Column("email", String(254), nullable=False, unique=True),
        Column("is_staff", Boolean, nullable=False, default=False),
        Column("is_active", Boolean, nullable=False, default=True),
        _stamp("date_joined"),
        Column("company_name", String(200)),
        Column("company_address", Text),
        Column("company_logo", String(255)),
    )


def _clients(md: MetaData, ident: TypeEngine[Any]) -> Table:
    return Table(
        "clients_client", md, _pk(ident),
        Column("name", String(255), nullable=False),
        Column("email", String(254)),
        Column("phone", String(50)),
        Column("address", Text),
        Column("company", String(255)),
        Column("tax_id", String(50)),
        Column("notes", Text),
        Column("is_active", Boolean, nullable=False, default=True),
        _stamp("created_at"), _stamp("updated_at"), _owner(ident),
        Index("clients_cli_owner_i_name", "owner_id", "name"),
        Index("clients_cli_owner_i_active", "owner_id", "is_active"),
    )


def _line_items(md: MetaData, name: str, parent: str, ident: TypeEngine[Any]) -> Table:
    return Table(
        name, md, _pk(ident),
        Column("description", Text, nullable=False),
        Column("quantity", Numeric(10, 2), nullable=False, default=1),
        Column("unit_price", Numeric(10, 2), nullable=False),
        Column("sort_order", Integer, nullable=False, default=0),
        Column(f"{parent}_id", ident, ForeignKey(f"invoicing_{parent}.id", ondelete="CASCADE"), nullable=False),
    )


def _document_columns(ident: TypeEngine[Any], number: str) -> list[Column[Any]]:
    """What quotes and invoices share."""
    return [
        _pk(ident),
        Column(number, String(50), nullable=False),
        Column("status", String(20), nullable=False, default="draft"),
        Column("title", String(255)), Column("notes", Text), Column("terms", Text),
        Column("issue_date", Date, nullable=False),
        _money("subtotal"), Column("tax_rate", Numeric(5, 4), nullable=False, default=0),
        _money("tax_amount"), _money("total_amount"),
        _stamp("created_at"), _stamp("updated_at"), _stamp("sent_at", nullable=True),
        _owner(ident),
        Column("client_id", ident, ForeignKey("clients_client.id", ondelete="RESTRICT"), nullable=False),
    ]


def _quotes(md: MetaData, ident: TypeEngine[Any]) -> tuple[Table, Table]:
    quotes = Table(
        "invoicing_quote", md, *_document_columns(ident, "quote_number"),
        Column("valid_until", Date, nullable=False),
        UniqueConstraint("owner_id", "quote_number"),
        Index("invoicing_q_owner_i_status", "owner_id", "status"),
    )
    return quotes, _line_items(md, "invoicing_quotelineitem", "quote", ident)


def _invoices(md: MetaData, ident: TypeEngine[Any]) -> tuple[Table, Table]:
    invoices = Table(
        "invoicing_invoice", md, *_document_columns(ident, "invoice_number"),
        Column("due_date", Date, nullable=False),
        _stamp("paid_at", nullable=True),
        Column("source_quote_id", ident, ForeignKey("invoicing_quote.id", ondelete="SET NULL"), unique=True),
        UniqueConstraint("owner_id", "invoice_number"),
        Index("invoicing_i_owner_i_status", "owner_id", "status"),
        Index("invoicing_i_due_date", "due_date"),
    )
    return invoices, _line_items(md, "invoicing_invoicelineitem", "invoice", ident)


def _expenses(md: MetaData, ident: TypeEngine[Any]) -> Table:
    return Table(
        "expenses_expense", md, _pk(ident),
        Column("description", String(500), nullable=False),
        Column("amount", Numeric(10, 2), nullable=False),
        Column("date", Date, nullable=False),
        Column("category", String(20), nullable=False, default="other"),
        Column("receipt_image", String(500)),
        Column("notes", Text),
        Column("is_reimbursable", Boolean, nullable=False, default=True),
        Column("is_recurring", Boolean, nullable=False, default=False),
        _stamp("created_at"), _stamp("updated_at"), _owner(ident),
        CheckConstraint("amount > 0", name="expense_amount_positive"),
        Index("expenses_ex_owner_i_date", "owner_id", "date"),
    )


def _snapshots(md: MetaData, ident: TypeEngine[Any]) -> Table:
    return Table(
        "dashboard_dashboardsnapshot", md, _pk(ident), _owner(ident),
        Column("snapshot_date", Date, nullable=False),
        Column("period_type", String(20), nullable=False, default="monthly"),
        _money("total_revenue", 12), _money("total_expenses", 12), _money("net_profit", 12),
        _money("outstanding_amount", 12),
        Column("total_clients", Integer, nullable=False, default=0),
        Column("new_clients", Integer, nullable=False, default=0),
        Column("total_invoices", Integer, nullable=False, default=0),
        Column("total_quotes", Integer, nullable=False, default=0),
        Column("quote_conversion_rate", Numeric(5, 2), nullable=False, default=0),
        _money("average_invoice_value"),
        Column("total_expense_count", Integer, nullable=False, default=0),
        _money("reimbursable_expenses", 12),
        _stamp("created_at"), _stamp("updated_at"),
        UniqueConstraint("owner_id", "snapshot_date", "period_type"),
    )


def _own_tables(md: MetaData, ident: TypeEngine[Any]) -> tuple[Table, Table, Table]:
    """skqueue's tables: their own ids are always UUIDs; owners follow the user id kind."""
    notifications = Table(
        "dashboard_notification", md, Column("id", Uuid, primary_key=True), _owner(ident),
        Column("message", Text, nullable=False),
        Column("notification_type", String(20), nullable=False),
        _stamp("created_at"), _stamp("read_at", nullable=True),
        Column("email_to", String(254)),
        Column("email_status", String(20), nullable=False),  # pending, sent, failed, disabled, no_address
        Column("email_attempts", Integer, nullable=False, default=0),
        Column("email_error", Text),
        _stamp("emailed_at", nullable=True),
        Index("dashboard_notification_owner_created", "owner_id", "created_at"),
    )
    exports = Table(
        "dashboard_export", md, Column("id", Uuid, primary_key=True), _owner(ident),
        Column("export_format", String(10), nullable=False),
        Column("path", Text, nullable=False),
        Column("size_bytes", BigInteger, nullable=False),
        Column("row_count", Integer, nullable=False),
        Column("sha256", String(64), nullable=False),
        Column("period_start", Date, nullable=False), Column("period_end", Date, nullable=False),
        _stamp("created_at"),
    )
    reports = Table(
        "dashboard_performancereport", md, Column("id", Uuid, primary_key=True), _stamp("created_at"),
        Column("status", String(20), nullable=False),
        Column("report", Text, nullable=False),  # the JSON document performance_analysis returned
    )
    return notifications, exports, reports
