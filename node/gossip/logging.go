package gossip

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// rejectLogEvery spaces the log lines about rejected messages of one kind:
// the first is logged, then one per period with the count.
const rejectLogEvery = 10 * time.Second

// logWriter receives memberlist's log lines ("[DEBUG] memberlist: ...",
// "[INFO]", "[WARN]", "[ERR]"), forwards them to slog at the matching
// level and counts the messages memberlist rejected.
type logWriter struct {
	log     *slog.Logger
	rej     *rejections
	suspect func(node string) // a probe of node failed
}

func (w *logWriter) Write(p []byte) (int, error) {
	level, msg := parseLine(string(p))
	if node, ok := suspectedNode(msg); ok && w.suspect != nil {
		w.suspect(node)
	}
	if kind := rejectionKind(msg); kind != "" {
		w.rej.hit(w.log, kind, msg, time.Now())
		return len(p), nil
	}
	ctx := context.Background()
	if w.log.Enabled(ctx, level) {
		w.log.Log(ctx, level, msg, "component", "memberlist")
	}
	return len(p), nil
}

// parseLine splits a memberlist log line into its level and message.
func parseLine(line string) (slog.Level, string) {
	line = strings.TrimSpace(line)
	level := slog.LevelInfo
	for _, p := range []struct {
		prefix string
		level  slog.Level
	}{
		{"[DEBUG]", slog.LevelDebug},
		{"[INFO]", slog.LevelInfo},
		{"[WARN]", slog.LevelWarn},
		{"[ERR]", slog.LevelError},
		{"[ERROR]", slog.LevelError},
		{"Err:", slog.LevelError},
	} {
		if rest, ok := strings.CutPrefix(line, p.prefix); ok {
			level, line = p.level, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	return level, line
}

// suspectedNode recognises memberlist's line for a failed probe:
// "Suspect NODE has failed, no acks received".
func suspectedNode(msg string) (string, bool) {
	rest, ok := strings.CutPrefix(msg, "Suspect ")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, " has failed, no acks received")
}

// rejectionKind tells whether a memberlist message reports a packet or
// stream from a peer dropped for its label ("label") or its encryption
// ("key"). Errors a peer reported back ("remote error") are its
// rejections, not this node's.
func rejectionKind(msg string) string {
	l := strings.ToLower(msg)
	if strings.Contains(l, "remote error") {
		return ""
	}
	if strings.Contains(l, "unacceptable label") {
		return "label"
	}
	for _, s := range []string{
		"decrypt packet failed",
		"no installed keys could decrypt",
		"remote state is encrypted and encryption is not configured",
		"encryption is configured but remote state is not encrypted",
		"unsupported encryption version",
		"payload is too small to decrypt",
		"cannot decrypt empty payload",
	} {
		if strings.Contains(l, s) {
			return "key"
		}
	}
	return ""
}

// rejections counts rejected messages by kind and spaces their log lines.
type rejections struct {
	mu     sync.Mutex
	n      map[string]uint64
	logged map[string]time.Time
	quiet  map[string]uint64 // not logged since the last line
}

func newRejections() *rejections {
	return &rejections{
		n:      map[string]uint64{"key": 0, "label": 0, "malformed": 0},
		logged: map[string]time.Time{},
		quiet:  map[string]uint64{},
	}
}

var rejectAdvice = map[string]string{
	"key":       "gossip from a peer rejected: its key differs from this node's (or one side has none): give every node the same gossip key file",
	"label":     "gossip from a peer rejected: its label differs from this node's: set the same gossip label on every node of a fleet",
	"malformed": "undecodable gossip from a peer dropped: is it running a compatible haad version?",
}

func (r *rejections) hit(log *slog.Logger, kind, detail string, now time.Time) {
	r.mu.Lock()
	r.n[kind]++
	total := r.n[kind]
	if last, ok := r.logged[kind]; ok && now.Sub(last) < rejectLogEvery {
		r.quiet[kind]++
		r.mu.Unlock()
		return
	}
	quiet := r.quiet[kind]
	r.quiet[kind], r.logged[kind] = 0, now
	r.mu.Unlock()
	log.Warn(rejectAdvice[kind], "reason", kind, "rejected", total, "not_logged", quiet, "detail", detail)
}

func (r *rejections) counts() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]uint64, len(r.n))
	for k, v := range r.n {
		m[k] = v
	}
	return m
}
