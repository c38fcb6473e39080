#!/bin/sh
# postrm of the haa package: forget the unit; purge also removes haad's
# state (configuration generation, maintenance, fleet document) and the
# configuration postinst created.
set -e

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/haa /run/haa
	rm -f /etc/haa/haad.yaml
	rmdir /etc/haa 2>/dev/null || true
fi
exit 0
