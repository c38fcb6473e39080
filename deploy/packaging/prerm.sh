#!/bin/sh
# prerm of the haa package: on removal, stop haad (it hands every
# mastership over) and disable it. An upgrade leaves it running.
set -e

if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl disable --now haad.service >/dev/null 2>&1 || true
fi
exit 0
