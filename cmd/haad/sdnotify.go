package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/haa-dev/haa/node"
)

// notifyEnv names the socket of systemd's service manager (Type=notify).
const notifyEnv = "NOTIFY_SOCKET"

// sdNotifier tells systemd how haad is doing (sd_notify(3), without
// libsystemd): READY=1 once the configuration runs and the API serves,
// RELOADING=1 and READY=1 again around a SIGHUP reload, STOPPING=1 at
// SIGTERM, and a STATUS= line that systemctl status shows. Without
// $NOTIFY_SOCKET (not run by systemd) it does nothing.
type sdNotifier struct {
	addr *net.UnixAddr // nil: nobody listens
	log  *slog.Logger
}

// newSDNotifier reads $NOTIFY_SOCKET and removes it from the environment,
// so that the commands haad runs (trackers, notify scripts) do not talk
// to systemd in its name. A path names a datagram socket; a name starting
// with @ an abstract one (Linux).
func newSDNotifier(log *slog.Logger) *sdNotifier {
	name := os.Getenv(notifyEnv)
	os.Unsetenv(notifyEnv)
	n := &sdNotifier{log: log}
	switch {
	case name == "":
	case strings.HasPrefix(name, "/"), strings.HasPrefix(name, "@"):
		// The net package makes a leading @ the abstract namespace's NUL.
		n.addr = &net.UnixAddr{Name: name, Net: "unixgram"}
	default:
		log.Warn("$NOTIFY_SOCKET is neither a path nor an abstract socket (@name): systemd is not told when haad is ready",
			"notify-socket", name)
	}
	return n
}

// notify sends one message of newline-separated VAR=value assignments.
func (n *sdNotifier) notify(vars ...string) {
	if n == nil || n.addr == nil {
		return
	}
	if err := sdNotify(n.addr, strings.Join(vars, "\n")); err != nil {
		n.log.Warn("telling systemd (sd_notify)", "notify-socket", n.addr.Name, "state", vars[0], "err", err)
	}
}

// ready says that the configuration runs and the API serves.
// ready says that haad runs; after a reload that did not take, STATUS
// says so (the first line of why) while the old configuration runs on.
func (n *sdNotifier) ready(agent *node.Agent, reloadErr ...error) {
	status := runningStatus(agent.Node(), len(agent.Instances()))
	for _, err := range reloadErr {
		if err != nil {
			first, _, _ := strings.Cut(err.Error(), "\n")
			status = first + "; " + status
		}
	}
	n.notify("READY=1", "STATUS="+status)
}

// reloading says that a SIGHUP reload starts; ready must follow it.
func (n *sdNotifier) reloading() {
	n.notify("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()), "STATUS=reloading the configuration")
}

// stopping says that haad hands over its masterships and exits.
func (n *sdNotifier) stopping() {
	n.notify("STOPPING=1", "STATUS=stopping: handing over mastership")
}

// runningStatus is the STATUS= line of a running agent.
func runningStatus(n node.NodeInfo, instances int) string {
	s := fmt.Sprintf("running %d instances, configuration generation %d", instances, n.Generation)
	if n.Maintenance.Enabled {
		s += ", maintenance on"
	}
	if len(n.Listen) > 0 {
		s += ", API on " + strings.Join(n.Listen, " ")
	}
	return s
}

// sdNotify sends msg as one datagram to the socket at addr.
func sdNotify(addr *net.UnixAddr, msg string) error {
	c, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(msg))
	return err
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e3
}
