package helperlog

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// FromEnv logs to $TOLLGATE_LOG_FILE (appended, created 0600) if set, else
// to stderr; the level is $TOLLGATE_LOG_LEVEL (debug, info, warn, error;
// default warn on stderr, info in a file). The returned func closes the file.
func FromEnv(prog string, stderr io.Writer) (*slog.Logger, func()) {
	var w io.Writer = stderr
	level := slog.LevelWarn
	closeFn := func() {}
	if path := os.Getenv("TOLLGATE_LOG_FILE"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(stderr, "%s: cannot open TOLLGATE_LOG_FILE, logging to stderr: %v\n", prog, err)
		} else {
			w, level, closeFn = f, slog.LevelInfo, func() { _ = f.Close() }
		}
	}
	badLevel := ""
	if v := os.Getenv("TOLLGATE_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(strings.ToUpper(v))); err != nil {
			badLevel = v
		}
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	log := slog.New(h).With("prog", prog, "pid", os.Getpid())
	if badLevel != "" {
		log.Warn("TOLLGATE_LOG_LEVEL is not a level: set it to one of debug, info, warn, error",
			"value", badLevel, "using", level.String())
	}
	return log, closeFn
}
