// Swagger UI at /docs, from the vendored bundle (no CDN): the API's own /openapi.json.
// "Authorize" takes an API token; the calls go to this server only (CSP connect-src 'self').
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null, // the default validator is a third-party image: none on a closed network
  persistAuthorization: false,
});
