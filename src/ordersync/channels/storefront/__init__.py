"""A storefront simulator (:mod:`.simulator`): the order mix of the demo's storefronts and dealer apps."""
