#!/bin/sh
# Install the real OCI registry the test suite pushes charts to: Debian's `docker-registry`
# (CNCF Distribution 2.8) and `htpasswd` (apache2-utils). Idempotent and quick when both are
# there. Only where the machine allows it (root and apt-get); otherwise it says so and exits 0,
# and the tests that need the registry skip.
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

if have docker-registry && have htpasswd; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! have apt-get; then
    echo "install_registry: skipped (needs root and apt-get); OCI registry tests will skip." >&2
    echo "  to run them: apt-get install docker-registry apache2-utils" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! apt-cache show docker-registry >/dev/null 2>&1; then
    apt-get update -qq || true
fi
if ! apt-get install -y -qq --no-install-recommends docker-registry apache2-utils >/dev/null; then
    echo "install_registry: apt-get install failed; OCI registry tests will skip." >&2
    exit 0
fi
# The package enables a system service on :5000; the tests run their own registries only.
if have systemctl && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
