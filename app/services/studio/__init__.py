"""The process studio: editing procedures in the browser - diagram drafts, validation and deployment from the
modeler, the diagram layout, the form editor. Deployment and versions themselves are the platform's
(`workflow/processes`)."""
