#!/bin/sh
# Run once by the influxdb:1.8 image, on the first start of an empty volume, from
# /docker-entrypoint-initdb.d (after it made the database and the admin user):
# one InfluxDB user per platform service with the least grant its job needs.
# The users and grants are deltasense/influx_users.py's (tests/unit/test_compose.py
# checks this file against it); passwords come from the container's environment.
# Talks HTTP with curl (in the image) and hands it the admin's credentials on
# stdin, never on a command line.  The image sources this file into its own init
# script, so nothing here sets shell options, and every name is prefixed ds_.

: "${INFLUXDB_DB:?}" "${INFLUXDB_ADMIN_USER:?}" "${INFLUXDB_ADMIN_PASSWORD:?}"
case "$INFLUXDB_ADMIN_PASSWORD" in
*[!A-Za-z0-9_-]*) echo "deltasense users: INFLUXDB_ADMIN_PASSWORD may hold only A-Z a-z 0-9 _ -" >&2; exit 1 ;;
esac
ds_url="http://127.0.0.1:${INFLUXDB_INIT_PORT:-8086}/query"

ds_query() {
    ds_out=$(printf 'user = "%s:%s"\n' "$INFLUXDB_ADMIN_USER" "$INFLUXDB_ADMIN_PASSWORD" |
        curl -sS -K - --data-urlencode "q=$1" "$ds_url") || {
        echo "deltasense users: InfluxDB at $ds_url did not answer" >&2
        exit 1
    }
    case "$ds_out" in
    *'"error"'*)
        echo "deltasense users: InfluxDB refused a statement: $ds_out" >&2
        exit 1
        ;;
    esac
}

# ds_user NAME GRANT PASSWORD-VARIABLE
ds_user() {
    eval "ds_password=\${$3:-}"
    case "$ds_password" in
    '') echo "deltasense users: $3 is not set (docker/env.example)" >&2; exit 1 ;;
    *[!A-Za-z0-9_-]*) echo "deltasense users: $3 may hold only A-Z a-z 0-9 _ -" >&2; exit 1 ;;
    esac
    if [ "${#ds_password}" -lt 32 ]; then
        echo "deltasense users: $3 is shorter than 32 characters" >&2
        exit 1
    fi
    ds_query "CREATE USER \"$1\" WITH PASSWORD '$ds_password'"
    ds_query "GRANT $2 ON \"$INFLUXDB_DB\" TO \"$1\""
    echo "deltasense users: $1 ($2 on $INFLUXDB_DB)"
}

ds_user ingest WRITE DELTASENSE_INFLUX_PASSWORD_INGEST
ds_user analytics ALL DELTASENSE_INFLUX_PASSWORD_ANALYTICS
ds_user api ALL DELTASENSE_INFLUX_PASSWORD_API
