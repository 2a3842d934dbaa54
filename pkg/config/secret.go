package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// ErrSecretOnCommandLine is returned by Load when a secret setting (see SecretVar)
// is given as a command-line flag.
var ErrSecretOnCommandLine = errors.New("secrets are not accepted on the command line")

// secretValue is the flag.Value of a secret setting: it can be set from the YAML
// file and the environment, never from the command line, where every local user
// (ps, /proc/<pid>/cmdline) and a profiler's cmdline endpoint would see it.
type secretValue struct {
	p *string
	// fileFlag names the setting holding a file with the secret ("" if none).
	fileFlag string
}

func (s *secretValue) String() string {
	if s == nil || s.p == nil || *s.p == "" {
		return ""
	}
	return "<redacted>"
}

func (s *secretValue) Set(v string) error {
	*s.p = v
	return nil
}

// SecretVar registers a secret setting bound to p: a flag whose value Load takes
// from the YAML file or the environment (EnvName(name)) only; given on the command
// line, Load fails with ErrSecretOnCommandLine and says where to put it instead.
// fileFlag names the setting that reads the secret from a file ("" if none). The
// value is never printed (String shows "<redacted>").
func SecretVar(fs *flag.FlagSet, p *string, name, fileFlag, usage string) {
	*p = ""
	where := "environment " + EnvName(name) + " or the config file"
	if fileFlag != "" {
		where = "-" + fileFlag + ", environment " + EnvName(name) + " or the config file"
	}
	fs.Var(&secretValue{p: p, fileFlag: fileFlag}, name, usage+" (secret: "+where+" only, never a flag)")
}

// IsSecret reports whether f was registered with SecretVar.
func IsSecret(f *flag.Flag) bool {
	_, ok := f.Value.(*secretValue)
	return ok
}

// secretOnCLI is the one-line refusal of a secret given as a flag.
func secretOnCLI(f *flag.Flag) error {
	alt := "set " + EnvName(f.Name) + " in the environment"
	if fv := f.Value.(*secretValue); fv.fileFlag != "" {
		alt = "use -" + fv.fileFlag + " <file> or " + EnvName(f.Name)
	}
	return fmt.Errorf("flag -%s: %w (other users see it in ps and /proc): %s", f.Name, ErrSecretOnCommandLine, alt)
}

// ReadSecretFile reads a secret from path, without surrounding whitespace. An
// empty file is an error: a secret that silently became "" would turn
// authentication off.
func ReadSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret file: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}
