"""The workflow platform: deployed procedures and their versions, instances, tasks and forms, timers, deadlines
and calendars, the outbox, response links, and the registries (service-task handlers, form checks, delivery
listeners) that the procedures and `handlers/` fill by registration. Nothing here imports a procedure, lot data
or the studio: they import the platform."""
