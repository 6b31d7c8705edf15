"""Every GraphQL document the Shopify connector sends, in one place, for one pinned Admin API version.

Each is validated against Shopify's own Admin schema for :data:`API_VERSION` (and the next version) by
``tests/unit/shopify/test_operations_schema.py``, so a field Shopify renames fails our CI, not a
customer's store. Moving to a newer version is the one-line change of :data:`API_VERSION`.

Costs follow Shopify's calculated query cost; connection sizes are chosen so that no single query comes
near the 1,000-point ceiling of one request.
"""

from __future__ import annotations

#: the Admin API version every call goes to (``/admin/api/<version>/graphql.json``)
API_VERSION = "2026-07"
#: the next version the schema tests also check, so moving up is known to be safe before it is done
NEXT_API_VERSION = "2026-10"

SHOP = """
query Shop {
  shop { name myshopifyDomain currencyCode plan { displayName shopifyPlus } }
}
"""

ORDER_FIELDS = """
fragment OrderFields on Order {
  id
  name
  createdAt
  updatedAt
  processedAt
  cancelledAt
  cancelReason
  poNumber
  note
  currencyCode
  displayFinancialStatus
  displayFulfillmentStatus
  purchasingEntity {
    __typename
    ... on PurchasingCompany {
      company { id externalId name }
      location { id externalId name taxSettings { taxRegistrationId } }
      contact { id }
    }
    ... on Customer { id }
  }
  lineItems(first: 100) {
    nodes {
      id
      sku
      name
      quantity
      currentQuantity
      variant { id sku }
      originalUnitPriceSet { shopMoney { amount currencyCode } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

#: one order as it is now (webhooks only say *that* an order changed; its current state is read here)
ORDER = """
query Order($id: ID!) {
  order(id: $id) { ...OrderFields }
}
""" + ORDER_FIELDS

#: the orders updated since a watermark, oldest first (the reconciliation sweep)
ORDERS_UPDATED = """
query OrdersUpdated($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {
    nodes { id name updatedAt cancelledAt }
    pageInfo { hasNextPage endCursor }
  }
}
"""

#: B2B company locations with their company, external ids, tax ids, catalogs and payment terms
COMPANY_LOCATIONS = """
query CompanyLocations($first: Int!, $after: String) {
  companyLocations(first: $first, after: $after) {
    nodes {
      id
      name
      externalId
      currency
      taxSettings { taxRegistrationId }
      company { id name externalId }
      catalogs(first: 5) { nodes { id title ... on CompanyLocationCatalog { priceList { id currency } } } }
      buyerExperienceConfiguration { paymentTermsTemplate { id name } }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

LOCATIONS = """
query Locations($first: Int!, $after: String) {
  locations(first: $first, after: $after) {
    nodes { id name isActive }
    pageInfo { hasNextPage endCursor }
  }
}
"""

#: variants with their SKU and inventory item (SKU is how ERP products are matched, never the title)
VARIANTS = """
query Variants($first: Int!, $after: String, $query: String) {
  productVariants(first: $first, after: $after, query: $query) {
    nodes { id sku inventoryItem { id } }
    pageInfo { hasNextPage endCursor }
  }
}
"""

#: available quantities of a location's inventory levels, a page at a time
LOCATION_LEVELS = """
query LocationLevels($id: ID!, $first: Int!, $after: String) {
  location(id: $id) {
    inventoryLevels(first: $first, after: $after) {
      nodes { item { id sku } quantities(names: ["available"]) { name quantity } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

#: the available quantity of some inventory items at one location (re-read after a stale compare-and-set)
ITEM_LEVELS = """
query ItemLevels($ids: [ID!]!, $locationId: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      sku
      inventoryLevel(locationId: $locationId) { quantities(names: ["available"]) { name quantity } }
    }
  }
}
"""

#: compare-and-set of available quantities: each ``changeFromQuantity`` is what we read; required with
#: an idempotency key since 2026-04
INVENTORY_SET = """
mutation InventorySet($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""

PRICE_LIST_CREATE = """
mutation PriceListCreate($input: PriceListCreateInput!) {
  priceListCreate(input: $input) {
    priceList { id currency }
    userErrors { field message code }
  }
}
"""

CATALOG_CREATE = """
mutation CatalogCreate($input: CatalogCreateInput!) {
  catalogCreate(input: $input) {
    catalog { id title }
    userErrors { field message code }
  }
}
"""

#: fixed prices on a price list (replacing what a variant had); at most 250 per call
PRICES_ADD = """
mutation PricesAdd($priceListId: ID!, $prices: [PriceListPriceInput!]!) {
  priceListFixedPricesAdd(priceListId: $priceListId, prices: $prices) {
    prices { variant { id } }
    userErrors { field message code }
  }
}
"""

#: quantity price breaks (the ERP's quantity-dependent contract prices)
QUANTITY_PRICING = """
mutation QuantityPricing($priceListId: ID!, $input: QuantityPricingByVariantUpdateInput!) {
  quantityPricingByVariantUpdate(priceListId: $priceListId, input: $input) {
    productVariants { id }
    userErrors { field message code }
  }
}
"""

PAYMENT_TERMS_TEMPLATES = """
query PaymentTermsTemplates {
  paymentTermsTemplates { id name paymentTermsType dueInDays }
}
"""

#: the payment terms a company location buys on (from the ERP's terms)
COMPANY_LOCATION_TERMS = """
mutation CompanyLocationTerms($id: ID!, $input: CompanyLocationUpdateInput!) {
  companyLocationUpdate(companyLocationId: $id, input: $input) {
    companyLocation { id buyerExperienceConfiguration { paymentTermsTemplate { id name } } }
    userErrors { field message code }
  }
}
"""

#: an order's fulfillment orders and what remains to fulfil in each (5 x 50: 10 x 100 would cost 2,053
#: points, over the 1,000 a query may ask for)
FULFILLMENT_ORDERS = """
query FulfillmentOrders($id: ID!) {
  order(id: $id) {
    id
    fulfillmentOrders(first: 5) {
      nodes {
        id
        status
        assignedLocation { location { id } }
        lineItems(first: 50) { nodes { id sku remainingQuantity lineItem { id sku } } }
      }
    }
  }
}
"""

FULFILLMENT_CREATE = """
mutation FulfillmentCreate($fulfillment: FulfillmentInput!, $message: String) {
  fulfillmentCreate(fulfillment: $fulfillment, message: $message) {
    fulfillment { id status trackingInfo { company number url } }
    userErrors { field message }
  }
}
"""

ORDER_CANCEL = """
mutation OrderCancel($orderId: ID!, $reason: OrderCancelReason!, $restock: Boolean!, $refund: Boolean,
                     $notifyCustomer: Boolean, $staffNote: String) {
  orderCancel(orderId: $orderId, reason: $reason, restock: $restock, refund: $refund,
              notifyCustomer: $notifyCustomer, staffNote: $staffNote) {
    job { id }
    orderCancelUserErrors { field message code }
  }
}
"""

#: a refund of line items; required with an idempotency key since 2026-04 (as inventorySetQuantities)
REFUND_CREATE = """
mutation RefundCreate($input: RefundInput!, $key: String!) {
  refundCreate(input: $input) @idempotent(key: $key) {
    refund { id totalRefundedSet { shopMoney { amount currencyCode } } }
    userErrors { field message }
  }
}
"""

WEBHOOK_SUBSCRIPTIONS = """
query WebhookSubscriptions($first: Int!, $after: String) {
  webhookSubscriptions(first: $first, after: $after) {
    nodes { id topic uri }
    pageInfo { hasNextPage endCursor }
  }
}
"""

WEBHOOK_CREATE = """
mutation WebhookCreate($topic: WebhookSubscriptionTopic!, $uri: String!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: {uri: $uri, format: JSON}) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}
"""

#: a bulk read (no cost per object: for the full stock and variant reads)
BULK_RUN = """
mutation BulkRun($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: false) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""

BULK_STATUS = """
query BulkStatus($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url }
}
"""

#: the query a bulk read of every variant with its SKU, inventory item and available quantity per location runs
BULK_VARIANT_LEVELS = """
{
  productVariants {
    edges { node { id sku inventoryItem { id inventoryLevels { edges { node {
      location { id } quantities(names: ["available"]) { name quantity } } } } } } }
  }
}
"""

#: the query a bulk read of every variant with its SKU and inventory item runs (a full price push: ~10
#: points, where paging 10,000 variants costs ~20,000)
BULK_VARIANTS = """
{
  productVariants {
    edges { node { id sku inventoryItem { id } } }
  }
}
"""

#: the webhook topics the connector subscribes to
WEBHOOK_TOPICS = ("ORDERS_CREATE", "ORDERS_UPDATED", "ORDERS_CANCELLED", "ORDERS_PAID", "ORDERS_EDITED")

#: every document by name (for the schema tests and the double's self-check)
ALL: dict[str, str] = {
    name: value for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str) and value.lstrip().startswith(("query", "mutation"))
}
