// ReDoc at /redoc, from the vendored standalone bundle (no CDN). Search is off: it runs
// in a worker made from a blob: URL, which the page's CSP does not allow.
"use strict";
Redoc.init("/openapi.json", { disableSearch: true, hideDownloadButton: false }, document.getElementById("redoc"));
