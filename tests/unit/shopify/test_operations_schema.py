"""Every GraphQL document the connector sends is valid against Shopify's own Admin schema, for the pinned
API version and the next one, so a field Shopify renames or removes fails here rather than in a customer's
store; the introspection files are the ones the schema README lists."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path

import pytest
from graphql import (
    DirectiveNode,
    FieldNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLSchema,
    build_client_schema,
    get_named_type,
    parse,
    validate,
    visit,
)
from graphql.language import Visitor

import ordersync
from ordersync.channels.shopify import operations as ops

SCHEMA_DIR = Path(ordersync.__file__).resolve().parent / "devkit" / "shopify" / "schema"
VERSIONS = (ops.API_VERSION, ops.NEXT_API_VERSION)
DOCUMENTS = {**ops.ALL, "BULK_VARIANT_LEVELS": ops.BULK_VARIANT_LEVELS, "BULK_VARIANTS": ops.BULK_VARIANTS}


@pytest.fixture(scope="module", params=VERSIONS)
def schema(request: pytest.FixtureRequest) -> GraphQLSchema:
    """Shopify's Admin schema of one API version, built once for the module."""
    with gzip.open(SCHEMA_DIR / f"admin_{request.param}.json.gz") as f:
        introspection = json.load(f)["data"]
    return build_client_schema(introspection, assume_valid=True)


def test_the_versions_differ_and_the_documents_are_found() -> None:
    assert ops.API_VERSION != ops.NEXT_API_VERSION
    assert {"ORDER", "ORDERS_UPDATED", "INVENTORY_SET", "BULK_RUN", "BULK_STATUS", "WEBHOOK_CREATE"} <= set(ops.ALL)
    assert all((SCHEMA_DIR / f"admin_{v}.json.gz").is_file() for v in VERSIONS)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid(schema: GraphQLSchema, name: str) -> None:
    errors = validate(schema, parse(DOCUMENTS[name]))
    assert [e.message for e in errors] == []


def test_webhook_topics_are_shopify_topics(schema: GraphQLSchema) -> None:
    topics = schema.get_type("WebhookSubscriptionTopic")
    assert isinstance(topics, GraphQLEnumType)
    assert set(ops.WEBHOOK_TOPICS) - set(topics.values) == set()
    assert len(set(ops.WEBHOOK_TOPICS)) == len(ops.WEBHOOK_TOPICS)


def _directives_on(document: str, field: str) -> list[DirectiveNode]:
    found: list[DirectiveNode] = []

    class Fields(Visitor):
        def enter_field(self, node: FieldNode, *_: object) -> None:
            if node.name.value == field:
                found.extend(node.directives or ())

    visit(parse(document), Fields())
    return found


def test_inventory_set_is_idempotent(schema: GraphQLSchema) -> None:
    """The compare-and-set carries an idempotency key (required since 2026-04); passing each quantity's
    ``changeFromQuantity`` (what was read) is the caller's job, checked by the sync's own tests."""
    directive = schema.get_directive("idempotent")
    assert directive is not None and "key" in directive.args
    used = [d for d in _directives_on(ops.INVENTORY_SET, "inventorySetQuantities") if d.name.value == "idempotent"]
    assert len(used) == 1
    assert [a.name.value for a in used[0].arguments or ()] == ["key"]
    given = schema.get_type("InventorySetQuantitiesInput")
    assert isinstance(given, GraphQLInputObjectType)
    quantity = get_named_type(given.fields["quantities"].type)
    assert isinstance(quantity, GraphQLInputObjectType)
    assert "changeFromQuantity" in quantity.fields


def test_an_invalid_document_is_caught(schema: GraphQLSchema) -> None:
    """The check is not vacuous: a field Shopify does not have fails it."""
    errors = validate(schema, parse("query Shop { shop { name noSuchField } }"))
    assert [e.message for e in errors] == ["Cannot query field 'noSuchField' on type 'Shop'."]


def test_schema_files_match_the_readme() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text()
    listed = dict(re.findall(r"^\|\s*([\w.-]+\.(?:json\.gz|json))\s*\|.*\|\s*([0-9a-f]{64})\s*\|\s*$", readme, re.M))
    assert {f"admin_{v}.json.gz" for v in VERSIONS} <= set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((SCHEMA_DIR / name).read_bytes()).hexdigest() == digest, name
