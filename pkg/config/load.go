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
// A secret setting (SecretVar) given in args is refused with ErrSecretOnCommandLine.
func Load(fs *flag.FlagSet, args []string, target any) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &ParseError{Err: err}
	}
	onCLI := map[string]string{}
	var secretErrs []error
	fs.Visit(func(f *flag.Flag) {
		if IsSecret(f) {
			secretErrs = append(secretErrs, secretOnCLI(f))
		}
		onCLI[f.Name] = f.Value.String()
	})
	if len(secretErrs) > 0 {
		return errors.Join(secretErrs...)
	}

	path := onCLI["config"]
	if path == "" {
		path = os.Getenv(EnvName("config"))
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := decodeYAML(data, target); err != nil {
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

// ParseError is a command line the flag set could not parse (an unknown flag, a
// value of the wrong type), as opposed to a configuration that parsed but is wrong.
type ParseError struct{ Err error }

func (e *ParseError) Error() string { return e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

// decodeYAML decodes data into target, refusing unknown keys. A key may be spelled
// as its flag is (send-queue) or with underscores (send_queue): the flags use dashes
// and the YAML tags underscores, and a user copying a flag name into the file should
// not be told the key is unknown.
func decodeYAML(data []byte, target any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	if doc.Kind == 0 { // empty file
		return nil
	}
	dashesToUnderscores(&doc)
	var buf bytes.Buffer
	if err := yaml.NewEncoder(&buf).Encode(&doc); err != nil {
		return err
	}
	dec := yaml.NewDecoder(&buf)
	dec.KnownFields(true)
	if err := dec.Decode(target); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// dashesToUnderscores rewrites every mapping key below n from flag spelling to the
// YAML tag spelling. Values are left alone.
func dashesToUnderscores(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := n.Content[i]; k.Kind == yaml.ScalarNode {
				k.Value = strings.ReplaceAll(k.Value, "-", "_")
			}
		}
	}
	for _, c := range n.Content {
		dashesToUnderscores(c)
	}
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
