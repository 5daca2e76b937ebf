#!/usr/bin/env bash
# Builds the MicroPython unix port with mbedTLS allocating from the MicroPython
# heap (as on the rp2 port), for tests/security/test_firmware_tls_micropython.py:
#   scripts/build_micropython_unix.sh /path/to/micropython   # a v1.27.0 checkout
#   DS_MICROPYTHON=/path/to/micropython/ports/unix/build-standard/micropython \
#     .venv/bin/pytest tests/security/test_firmware_tls_micropython.py -s
# The checkout needs its lib/mbedtls and lib/micropython-lib submodules
# (`git submodule update --init lib/mbedtls lib/micropython-lib`). Nothing is
# downloaded here: this machine reaches no source host, so bring the checkout.
set -euo pipefail
src=${1:?usage: $0 MICROPYTHON_CHECKOUT}
conf="$src/ports/unix/mbedtls/mbedtls_config_port.h"
[[ -f $conf ]] || { echo "$conf: not a MicroPython checkout" >&2; exit 2; }
[[ -f $src/lib/mbedtls/library/ssl_tls.c ]] || { echo "lib/mbedtls is empty: init the submodule" >&2; exit 2; }
[[ -f $src/lib/micropython-lib/python-stdlib/ssl/ssl.py ]] || { echo "lib/micropython-lib is empty" >&2; exit 2; }
# The unix port takes the "bare metal" mbedTLS memory hooks only in its coverage
# build; take them always (mbedTLS on m_tracked_calloc, i.e. the GC heap).
sed -i 's|^#if defined(MICROPY_UNIX_COVERAGE)$|#if 1 // deltasense: mbedTLS on the MicroPython heap, as on rp2|' "$conf"
make -C "$src/ports/unix" -j"$(nproc)" VARIANT=standard MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 \
  CFLAGS_EXTRA=-DMICROPY_TRACKED_ALLOC=1
echo "built: $src/ports/unix/build-standard/micropython"
