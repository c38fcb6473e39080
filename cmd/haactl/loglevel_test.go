package main

import (
	"strings"
	"testing"

	"github.com/haa-dev/haa/ctl/ctltest"
	haav1 "github.com/haa-dev/haa/proto/haa/v1"
)

func TestLogLevel(t *testing.T) {
	fake, target := serve(t)
	fake.Update(func(a *ctltest.Agent) { a.Node.LogLevel = "info" })
	wantOut(t, haactl(t, target, "", "log-level"), "info\n")
	wantOut(t, haactl(t, target, "", "log-level", "-o", "json"), "{\n  \"level\": \"info\"\n}\n")
	wantOut(t, haactl(t, target, "", "log-level", "debug"), "Log level debug (was info), until haad restarts.\n")
	wantOut(t, haactl(t, target, "", "log-level", "DEBUG"), "Log level debug (unchanged).\n")
	wantOut(t, haactl(t, target, "", "log-level", "warn", "-o", "yaml"), "level: warn\nprevious: debug\n")
	wantOut(t, haactl(t, target, "", "log-level"), "warn\n")

	wantFail(t, haactl(t, target, "", "log-level", "verbose"), 2,
		"haactl: log level \"verbose\": want debug, info, warn, error\nsee 'haactl log-level --help'\n")
	wantFail(t, haactl(t, target, "", "log-level", "info", "debug"), 2,
		"haactl: accepts at most 1 arg(s), received 2\nsee 'haactl log-level --help'\n")
	if got := fake.Requests(); strings.Count(strings.Join(got, " "), "SetLogLevel") != 3 {
		t.Errorf("requests %q: want 3 SetLogLevel (a wrong level is refused before dialing)", got)
	}

	// An agent that does not report its level (older than haactl).
	fake.Update(func(a *ctltest.Agent) { a.Node = &haav1.Node{Name: "n1"} })
	wantFail(t, haactl(t, target, "", "log-level"), 1,
		"haactl: haad at "+target+" does not report its log level (is it older than haactl?)\n")
}

func TestLogLevelCompletion(t *testing.T) {
	_, target := serve(t)
	r := haactl(t, target, "", "__complete", "log-level", "")
	if r.code != 0 || !strings.HasPrefix(r.out, "debug\ninfo\nwarn\nerror\n:4\n") {
		t.Errorf("completion: %+v", r)
	}
}
