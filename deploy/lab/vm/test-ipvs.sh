# The IPVS stage's tests, run by make test-ipvs inside the VM (haalab vm) from
# the repository's root: the test binaries were built on the host into
# .build/vm/bin, haad/haactl/haalab into bin/. Each runs in its package's
# directory, as go test runs it. HAA_REQUIRE_IPVS=1 and HAA_REQUIRE_NETNS=1
# make a test that cannot run fail instead of skipping.
root=$(pwd)
status=0
run() { # run PKG-DIR BINARY ARGS...
	dir=$1 bin=$2
	shift 2
	echo "=== $dir: $bin $*"
	start=$(date +%s)
	(cd "$root/$dir" && "$root/.build/vm/bin/$bin" -test.count=1 -test.timeout=20m "$@") || status=1
	echo "=== $dir: $(( $(date +%s) - start )) s"
}
run node/lvs/ipvs ipvs.test -test.v -test.run 'IPVS'
# cmd/haad: the load balancer end to end, traffic through IPVS, and
# TestIPVSTableMatchesKeepalived, the differential suite against keepalived
# (about 75 s in the VM on an idle 2-core host; a difference waits out its
# bounds, 20 s a snapshot).
run cmd/haad haad.test -test.v -test.run "${HAA_VM_HAAD_TESTS:-LoadBalancer|IPVS}"
exit $status
