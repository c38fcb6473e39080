#!/bin/sh
# MISC_CHECK with misc_dynamic for the IPVS differential suite: each real
# server's agent publishes its weight in the file DIR/ADDR while it serves
# (the test writes and removes it as it starts and stops the server).
# Exit 2 + weight (keepalived's misc_dynamic: an exit code 2..255 sets the
# weight to code - 2), and 1 when there is no weight: the server is down.
# A file and no connection: under emulation a script that connects (curl,
# bash's /dev/tcp) can take seconds to start.
read -r w 2>/dev/null <"$1/$2" || exit 1
case $w in '' | *[!0-9]*) exit 1 ;; esac
exit $((w + 2))
