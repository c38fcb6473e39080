package node

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Errors of SetLogLevel (test with errors.Is).
var (
	// ErrUnknownLogLevel: the level is none of LogLevels.
	ErrUnknownLogLevel = errors.New("unknown log level")
	// ErrLogLevelFixed: the agent was built without WithLogLevel, so its
	// logger's level cannot change at runtime.
	ErrLogLevelFixed = errors.New("the log level of this agent cannot change at runtime")
)

// LogLevels are the level names SetLogLevel takes, most verbose first.
var LogLevels = []string{"debug", "info", "warn", "error"}

// WithLogLevel gives the agent the level of its logger (the LevelVar its
// handler was built with), so that SetLogLevel changes it and Node reports
// it.
func WithLogLevel(lv *slog.LevelVar) Option { return func(a *Agent) { a.level = lv } }

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

// logLevel is the name of the level now, "" without WithLogLevel.
func (a *Agent) logLevel() string {
	if a.level == nil {
		return ""
	}
	return LogLevelName(a.level.Level())
}

// SetLogLevel changes the level of the agent's logger now (until the
// process ends or the next call) and returns the previous one. level is one
// of LogLevels; anything else is ErrUnknownLogLevel.
func (a *Agent) SetLogLevel(level string) (previous string, err error) {
	lv, err := ParseLogLevel(level)
	if err != nil {
		return "", err
	}
	if a.level == nil {
		return "", ErrLogLevelFixed
	}
	a.levelMu.Lock()
	defer a.levelMu.Unlock()
	prev := a.level.Level()
	// Say it at whichever of the two levels is the more verbose, so that
	// an info line shows whether logging becomes quieter or louder.
	msg := []any{"level", LogLevelName(lv), "previous", LogLevelName(prev)}
	if lv < prev {
		a.level.Set(lv)
		a.log.Info("log level changed", msg...)
	} else {
		a.log.Info("log level changed", msg...)
		a.level.Set(lv)
	}
	return LogLevelName(prev), nil
}
