package node

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Errors of SetLogLevel (test with errors.Is).
var (
	// ErrUnknownLogLevel: the level is none of LogLevels.
	ErrUnknownLogLevel = errors.New("unknown log level")
	// ErrLogLevelFixed: the LogLevel has no LevelVar, so the logger's
	// level cannot change at runtime.
	ErrLogLevelFixed = errors.New("the log level of this agent cannot change at runtime")
)

// LogLevels are the level names SetLogLevel takes, most verbose first.
var LogLevels = []string{"debug", "info", "warn", "error"}

// ParseLogLevel parses one of LogLevels (any case).
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%w %q: use one of %s", ErrUnknownLogLevel, s, strings.Join(LogLevels, ", "))
}

// LogLevelName is the name of a level: one of LogLevels, or slog's name in
// lower case for a level in between (e.g. info+2, which haad --log-level
// accepts).
func LogLevelName(l slog.Level) string {
	switch l {
	case slog.LevelDebug:
		return "debug"
	case slog.LevelInfo:
		return "info"
	case slog.LevelWarn:
		return "warn"
	case slog.LevelError:
		return "error"
	}
	return strings.ToLower(l.String())
}

// LogLevel is the level of haad's logger, which changes at runtime
// (haactl log-level). It is separate from the agent: the logger is haad's.
type LogLevel struct {
	v   *slog.LevelVar // nil: the level cannot change
	log *slog.Logger
	mu  sync.Mutex // one Set at a time
}

// NewLogLevel returns the level of log, whose handler was built with v.
// A nil v makes a level that cannot change (Set returns
// ErrLogLevelFixed).
func NewLogLevel(v *slog.LevelVar, log *slog.Logger) *LogLevel {
	if log == nil {
		log = slog.Default()
	}
	return &LogLevel{v: v, log: log}
}

// Level is the name of the level now, "" if it cannot change.
func (l *LogLevel) Level() string {
	if l == nil || l.v == nil {
		return ""
	}
	return LogLevelName(l.v.Level())
}

// Set changes the level now (until the process ends or the next call) and
// returns the previous one. level is one of LogLevels; anything else is
// ErrUnknownLogLevel.
func (l *LogLevel) Set(level string) (previous string, err error) {
	lv, err := ParseLogLevel(level)
	if err != nil {
		return "", err
	}
	if l == nil || l.v == nil {
		return "", ErrLogLevelFixed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	prev := l.v.Level()
	// Say it at whichever of the two levels is the more verbose, so that
	// an info line shows whether logging becomes quieter or louder.
	msg := []any{"level", LogLevelName(lv), "previous", LogLevelName(prev)}
	if lv < prev {
		l.v.Set(lv)
		l.log.Info("log level changed", msg...)
	} else {
		l.log.Info("log level changed", msg...)
		l.v.Set(lv)
	}
	return LogLevelName(prev), nil
}
