// Package logging builds the process's zap logger from the log config section.
package logging

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config is the log section.
type Config struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is "console" (human) or "json" (machines).
	Format string `yaml:"format"`
}

// RegisterFlags registers the log.* flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Level, "log.level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.Format, "log.format", "console", "log format: console or json")
}

// Validate checks the section.
func (c *Config) Validate() error {
	var errs []error
	if _, err := zapcore.ParseLevel(c.Level); err != nil {
		errs = append(errs, fmt.Errorf("log: log.level %q: use debug, info, warn or error", c.Level))
	}
	if c.Format != "console" && c.Format != "json" {
		errs = append(errs, fmt.Errorf("log: log.format %q: use console or json", c.Format))
	}
	return errors.Join(errs...)
}

// New builds the logger, writing to stderr.
func New(c Config) (*zap.Logger, error) {
	return build(c, isTerminal(os.Stderr))
}

// build builds the logger; colour adds ANSI colours to the console format's levels,
// which only a terminal shows as colours (in a file or a pipe they are noise).
func build(c Config, colour bool) (*zap.Logger, error) { return buildTo(c, colour, "stderr") }

func buildTo(c Config, colour bool, sink string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
		if colour {
			zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
		}
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.OutputPaths = []string{sink}
	return zc.Build()
}

// isTerminal reports whether f is a character device (a terminal), without a
// dependency for one stat call.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
