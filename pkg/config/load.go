// Package config loads Natter's configuration: one YAML file, environment variables
// and command-line flags, in rising precedence. Each section type registers its own
// flags (whose defaults are the only defaults) and validates itself; see app.Config.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix prefixes the environment variable of every flag: flag "gateway.listen"
// is NATTER_GATEWAY_LISTEN.
const EnvPrefix = "NATTER_"

// EnvName returns the environment variable that sets flag name.
func EnvName(name string) string {
	r := strings.NewReplacer(".", "_", "-", "_")
	return EnvPrefix + strings.ToUpper(r.Replace(name))
}

// Load fills target (a pointer to a struct whose fields fs's flags are bound to) from,
// in rising precedence: the flag defaults, the YAML file given by the "config" flag or
// NATTER_CONFIG, environment variables (EnvName of each flag), and args.
//
// Unknown YAML keys and unparsable values are errors that name the key or variable.
func Load(fs *flag.FlagSet, args []string, target any) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCLI := map[string]string{}
	fs.Visit(func(f *flag.Flag) { onCLI[f.Name] = f.Value.String() })

	path := onCLI["config"]
	if path == "" {
		path = os.Getenv(EnvName("config"))
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(target); err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if _, set := onCLI[f.Name]; set || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s=%q: %w", EnvName(f.Name), v, err))
			}
		}
	})
	for name, v := range onCLI {
		if err := fs.Set(name, v); err != nil {
			errs = append(errs, fmt.Errorf("flag -%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// StringList is a flag.Value for a comma-separated list, bound to a []string.
type StringList struct{ P *[]string }

func (s StringList) String() string {
	if s.P == nil {
		return ""
	}
	return strings.Join(*s.P, ",")
}

// Set implements flag.Value.
func (s StringList) Set(v string) error {
	*s.P = nil
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*s.P = append(*s.P, part)
		}
	}
	return nil
}

// ListVar registers a comma-separated list flag bound to p with default def.
func ListVar(fs *flag.FlagSet, p *[]string, name string, def []string, usage string) {
	*p = append([]string(nil), def...)
	fs.Var(StringList{P: p}, name, usage)
}
