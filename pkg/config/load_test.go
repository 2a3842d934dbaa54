package config

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type sample struct {
	Config string        `yaml:"-"`
	Listen string        `yaml:"listen"`
	Wait   time.Duration `yaml:"wait"`
	Hosts  []string      `yaml:"hosts"`
	Nested struct {
		N int `yaml:"n"`
	} `yaml:"nested"`
}

func newFS(s *sample) *flag.FlagSet {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.StringVar(&s.Config, "config", "", "")
	fs.StringVar(&s.Listen, "listen", "default", "")
	fs.DurationVar(&s.Wait, "wait", time.Second, "")
	ListVar(fs, &s.Hosts, "hosts", []string{"a"}, "")
	fs.IntVar(&s.Nested.N, "nested.n", 1, "")
	return fs
}

func TestPrecedence(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("listen: yaml\nwait: 5s\nhosts: [x, y]\nnested: {n: 7}\n"), 0o600))
	var s sample
	require.NoError(t, Load(newFS(&s), []string{"-config", p}, &s))
	require.Equal(t, "yaml", s.Listen)
	require.Equal(t, 5*time.Second, s.Wait)
	require.Equal(t, []string{"x", "y"}, s.Hosts)
	require.Equal(t, 7, s.Nested.N)

	t.Setenv("NATTER_LISTEN", "env")
	t.Setenv("NATTER_NESTED_N", "9")
	s = sample{}
	require.NoError(t, Load(newFS(&s), []string{"-config", p}, &s))
	require.Equal(t, "env", s.Listen, "env beats YAML")
	require.Equal(t, 9, s.Nested.N)

	s = sample{}
	require.NoError(t, Load(newFS(&s), []string{"-config", p, "-listen", "flag", "-hosts", "h1,h2"}, &s))
	require.Equal(t, "flag", s.Listen, "flags beat env")
	require.Equal(t, []string{"h1", "h2"}, s.Hosts)

	s = sample{}
	os.Unsetenv("NATTER_LISTEN")
	require.NoError(t, Load(newFS(&s), nil, &s))
	require.Equal(t, time.Second, s.Wait, "flag default when nothing else is set")
}

func TestErrorsNameTheSource(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("lisen: typo\n"), 0o600))
	var s sample
	err := Load(newFS(&s), []string{"-config", p}, &s)
	require.ErrorContains(t, err, "lisen")
	t.Setenv("NATTER_WAIT", "soon")
	s = sample{}
	err = Load(newFS(&s), nil, &s)
	require.ErrorContains(t, err, "NATTER_WAIT")
	require.Error(t, Load(newFS(&s), []string{"-config", "/nonexistent.yaml"}, &s))
}

func TestYAMLKeysInFlagSpelling(t *testing.T) {
	type withDash struct {
		Config string `yaml:"-"`
		Sect   struct {
			SendQueue int `yaml:"send_queue"`
		} `yaml:"sect"`
	}
	for _, doc := range []string{"sect: {send_queue: 9}\n", "sect:\n  send-queue: 9\n"} {
		var s withDash
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.StringVar(&s.Config, "config", "", "")
		fs.IntVar(&s.Sect.SendQueue, "sect.send-queue", 1, "")
		p := filepath.Join(t.TempDir(), "c.yaml")
		require.NoError(t, os.WriteFile(p, []byte(doc), 0o600))
		require.NoError(t, Load(fs, []string{"-config", p}, &s), doc)
		require.Equal(t, 9, s.Sect.SendQueue, doc)
	}
	var s sample
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("lisen: x\n"), 0o600))
	err := Load(newFS(&s), []string{"-config", p}, &s)
	require.ErrorContains(t, err, "lisen")
	require.NoError(t, os.WriteFile(p, []byte(""), 0o600))
	require.NoError(t, Load(newFS(&s), []string{"-config", p}, &s))
}

// TestSecretsRefusedOnCommandLine: a secret setting is read from the environment
// and the YAML file, and a start with it as a flag fails with one line naming the
// other forms.
func TestSecretsRefusedOnCommandLine(t *testing.T) {
	type conf struct {
		Config     string `yaml:"-"`
		Secret     string `yaml:"secret"`
		SecretFile string `yaml:"secret_file"`
	}
	newSecretFS := func(c *conf) *flag.FlagSet {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.StringVar(&c.Config, "config", "", "")
		SecretVar(fs, &c.Secret, "auth.secret", "auth.secret-file", "HS256 secret")
		fs.StringVar(&c.SecretFile, "auth.secret-file", "", "")
		return fs
	}
	var c conf
	err := Load(newSecretFS(&c), []string{"-auth.secret", "hunter2hunter2"}, &c)
	require.ErrorIs(t, err, ErrSecretOnCommandLine)
	require.NotContains(t, err.Error(), "\n", "one line")
	require.Contains(t, err.Error(), "-auth.secret-file")
	require.Contains(t, err.Error(), "NATTER_AUTH_SECRET")
	require.NotContains(t, err.Error(), "hunter2", "the refusal does not repeat the secret")

	t.Setenv("NATTER_AUTH_SECRET", "from-env")
	c = conf{}
	fs := newSecretFS(&c)
	require.NoError(t, Load(fs, nil, &c))
	require.Equal(t, "from-env", c.Secret)
	require.Equal(t, "<redacted>", fs.Lookup("auth.secret").Value.String(), "never printed")

	os.Unsetenv("NATTER_AUTH_SECRET")
	p := filepath.Join(t.TempDir(), "c.yaml")
	require.NoError(t, os.WriteFile(p, []byte("secret: from-yaml\n"), 0o600))
	c = conf{}
	require.NoError(t, Load(newSecretFS(&c), []string{"-config", p}, &c))
	require.Equal(t, "from-yaml", c.Secret)

	f := filepath.Join(t.TempDir(), "s")
	require.NoError(t, os.WriteFile(f, []byte("  pw\n"), 0o600))
	got, err := ReadSecretFile(f)
	require.NoError(t, err)
	require.Equal(t, "pw", got)
	require.NoError(t, os.WriteFile(f, []byte("\n"), 0o600))
	_, err = ReadSecretFile(f)
	require.ErrorContains(t, err, "empty")
}
