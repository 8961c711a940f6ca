"""Lot data: products, material and product lots and their status, genealogy, shipments and customers, imports,
forward/backward trace, GS1/UDI identifiers, and the demo lot data."""
