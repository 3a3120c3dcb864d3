"""The input tables of a customer base (DESIGN.md, "Input tables"): names and columns.

A table is an Arrow table; a base on disk is a folder with one ``<table>.parquet`` file (or a
folder of Parquet files) per table. ``contact_id`` is int64 or string in every table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CONTACT_ID", "TABLES", "TableSpec"]

CONTACT_ID = "contact_id"


@dataclass(frozen=True)
class TableSpec:
    """A table's name, its required columns and its optional ones (each ``name: kind``)."""

    name: str
    required: dict[str, str]
    optional: dict[str, str]

    @property
    def columns(self) -> dict[str, str]:
        """Every known column, required first."""
        return {**self.required, **self.optional}


# kinds: "id" (int64 or string), "timestamp", "float", "string", "bool", "list<string>"
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "contacts",
            required={CONTACT_ID: "id"},
            optional={},  # any other column is a firmographic/demographic attribute
        ),
        TableSpec(
            "orders",
            required={CONTACT_ID: "id", "ts": "timestamp"},
            optional={"amount": "float", "sku": "string", "product_group": "string", "promo": "bool"},
        ),
        TableSpec("interactions", required={CONTACT_ID: "id", "ts": "timestamp", "kind": "string"}, optional={}),
        TableSpec(
            "web_events",
            required={CONTACT_ID: "id", "ts": "timestamp"},
            optional={"page": "string", "duration_s": "float"},  # page id or URL path; seconds on it
        ),
        # a reference table: no contact_id, sent whole with every chunk
        TableSpec(
            "campaigns",
            required={"campaign_id": "id", "ts": "timestamp"},
            optional={"keywords": "list<string>", "promo": "bool"},
        ),
        # event: sent, open, click, bounce or unsubscribe
        TableSpec(
            "email_events",
            required={CONTACT_ID: "id", "ts": "timestamp", "campaign_id": "id", "event": "string"},
            optional={},
        ),
        TableSpec(
            "promotions",
            required={CONTACT_ID: "id", "campaign_id": "string", "ts": "timestamp", "treated": "bool"},
            optional={},
        ),
    )
}
