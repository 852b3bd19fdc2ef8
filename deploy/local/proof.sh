#!/usr/bin/env bash
# Runs the one-machine scale-out proof (proof_test.go) verbosely: three
# replicas behind nginx, memcached, MariaDB; every replica replaced under
# load; memcached resized from 3 to 4.
#
# Needs nginx and memcached, and a MariaDB on this
# machine whose user may create and drop ll_test_% databases, named by
# LOCALLIBRARY_TEST_MYSQL_DSN (default: root over TCP on 127.0.0.1:3306).
# The test starts, and stops, everything else itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
export LOCALLIBRARY_TEST_MYSQL_DSN="${LOCALLIBRARY_TEST_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/mysql}"
export LOCALLIBRARY_TEST_REQUIRE_SERVICES="${LOCALLIBRARY_TEST_REQUIRE_SERVICES:-1}"
exec go -C deploy test -count=1 -run Proof -v "$@" ./local/
