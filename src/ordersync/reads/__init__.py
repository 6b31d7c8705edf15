"""The read side: plain queries over the store for the experience API and the pages (orders, invoices,
returns, SLA clocks). No aggregate and no decisions: reads bypass the domain."""
