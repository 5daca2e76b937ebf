#!/bin/sh
# The console's third-party code (Leaflet, Leaflet.markercluster, uPlot) and the API
# explorers (Swagger UI at /docs, ReDoc at /redoc), from node_modules into
# api/static/vendor/ (git-ignored; no CDN, works offline). Run from the repository
# root after `npm ci`; used by scripts/bootstrap.sh and by the Dockerfile's
# vendor stage, so the dev stack and the image serve the same files.
set -eu
vendor=api/static/vendor
rm -rf "$vendor"
mkdir -p "$vendor/leaflet" "$vendor/markercluster" "$vendor/uplot" "$vendor/swagger-ui" "$vendor/redoc"
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css "$vendor/leaflet/"
cp -r node_modules/leaflet/dist/images "$vendor/leaflet/"
cp node_modules/leaflet/LICENSE "$vendor/leaflet/LICENSE"
cp node_modules/leaflet.markercluster/dist/leaflet.markercluster.js \
  node_modules/leaflet.markercluster/dist/MarkerCluster.css "$vendor/markercluster/"
cp node_modules/leaflet.markercluster/MIT-LICENCE.txt "$vendor/markercluster/LICENSE"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$vendor/uplot/"
cp node_modules/uplot/LICENSE "$vendor/uplot/LICENSE"
cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
  node_modules/swagger-ui-dist/LICENSE node_modules/swagger-ui-dist/NOTICE "$vendor/swagger-ui/"
cp node_modules/redoc/bundles/redoc.standalone.js "$vendor/redoc/"
cp node_modules/redoc/LICENSE "$vendor/redoc/LICENSE"
