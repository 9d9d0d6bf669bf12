// Starts Swagger UI on FileRelay's own spec. A file of its own: the page's policy runs no inline script.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-spec"),
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    // Swagger UI would otherwise send the spec to validator.swagger.io for its badge.
    validatorUrl: null,
    // The key stays in this page's memory: never written to localStorage.
    persistAuthorization: false,
    // No ?url= or ?configUrl= from a link: this page shows this server's API only.
    queryConfigEnabled: false,
    withCredentials: false
  });
})();
