#!/bin/sh
# debversion.sh VERSION: the Debian version of a git describe output.
#   v1.2.3            -> 1.2.3
#   v1.2.3-4-gabcdef  -> 1.2.3+4.gabcdef   (after 1.2.3)
#   abcdef[-dirty]    -> 0.0.0~gitYYYYMMDD.abcdef[.dirty] (no tag yet; the
#                        date is the last commit's)
set -e
v=${1:?usage: debversion.sh VERSION}
case "$v" in
v[0-9]*)
	echo "${v#v}" | sed 's/-/+/; s/-/./g'
	;;
*)
	d=$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || echo 0)
	echo "0.0.0~git$d.$v" | tr -c 'A-Za-z0-9.+~\n' .
	;;
esac
