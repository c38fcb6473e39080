#!/bin/sh
# postinst of the haa package: the socket directory now (tmpfiles.d does it
# at boot), and the unit known to systemd. haad is neither enabled nor
# restarted here: the example configuration must be edited first, and a
# restart hands every mastership over, which the operator times (one node at
# a time, see haactl maintenance).
set -e

if [ "$1" = configure ]; then
	if command -v systemd-tmpfiles >/dev/null 2>&1; then
		systemd-tmpfiles --create /usr/lib/tmpfiles.d/haa.conf || true
	else
		mkdir -p /run/haa && chmod 0750 /run/haa
	fi
	mkdir -p /var/lib/haa && chmod 0750 /var/lib/haa
	if [ ! -e /etc/haa/haad.yaml ]; then
		mkdir -p /etc/haa && chmod 0750 /etc/haa
		install -m 0640 /usr/share/haa/haad.yaml /etc/haa/haad.yaml
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
		if [ -n "$2" ] && systemctl is-active --quiet haad.service; then
			echo "haa: haad still runs the version before $2's upgrade: systemctl restart haad (one node at a time)"
		fi
	fi
	if [ -z "$2" ]; then
		echo "haa: edit /etc/haa/haad.yaml (haad --check --config /etc/haa/haad.yaml), then systemctl enable --now haad"
	fi
fi
exit 0
