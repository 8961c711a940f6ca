// Swagger UI on /api/v1/docs: the spec's address and options come from the container's data-* attributes.
(function () {
  "use strict";
  var container = document.getElementById("swagger-ui-container");
  var config = { url: container.dataset.specUrl, dom_id: "#swagger-ui-container" };
  var overrides = JSON.parse(container.dataset.config || "{}");
  Object.keys(overrides).forEach(function (name) { config[name] = overrides[name]; });
  window.ui = window.SwaggerUIBundle(config);
})();
