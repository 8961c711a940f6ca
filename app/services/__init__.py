"""Use cases: every read and write the pages, the API, the CLI and the scheduler make goes through here.

Subpackages by domain; the platform (`workflow`, `evidence`) never imports a domain (`lots`, `procedures`,
`studio`), lot data never imports a procedure, and nothing here imports `handlers/`:

- `workflow/`: the workflow platform - deployed procedures and versions, starting instances, the inbox and
  task completion, forms and their server-side checks, timers, regulatory deadlines and working-day calendars,
  plant time, the outbox sender, single-use response links, the handler and form-check registries, and the
  one-transaction-per-use-case rule.
- `evidence/`: what an inspector reads back - the hash-chained audit trail and its checkpoints, e-signatures,
  signed document revisions, document rendering and storage, and verification of stored evidence.
- `lots/`: lot data - products, lots and their status, genealogy and shipment imports, forward/backward trace,
  GS1/UDI identifiers, and the demo lot data.
- `procedures/`: the regulated procedures' own rules - recalls, CAPA, supplier returns, and their dashboards.
- `studio/`: the process studio - diagram drafts, deploying from the modeler, the diagram layout, the form editor.

`users` (accounts, sign-in, API tokens) and `demo` (the demo install) sit at this level: every domain uses the
first, the second uses every domain.
"""
