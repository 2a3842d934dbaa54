// Package logging builds the process's zap logger from the log config section.
package logging

import (
	"errors"
	"flag"
	"fmt"

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

// New builds the logger.
func New(c Config) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	zc := zap.NewProductionConfig()
	if c.Format == "console" {
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeLevel = zapcore.CapitalColorLevelEncoder
	}
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.OutputPaths = []string{"stderr"}
	return zc.Build()
}
