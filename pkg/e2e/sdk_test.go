package e2e

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// protocolConsts returns the string constants of pkg/protocol whose names start with
// prefix (FrameSend -> "send", CodeBadRequest -> "bad_request").
func protocolConsts(t *testing.T, prefix string) []string {
	t.Helper()
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join("..", "protocol", "*.go"))
	require.NoError(t, err)
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		require.NoError(t, err)
		files = append(files, f)
	}
	var out []string
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, err := strconv.Unquote(lit.Value)
						require.NoError(t, err)
						out = append(out, v)
					}
				}
			}
		}
	}
	require.NotEmpty(t, out, "no %s constants found", prefix)
	return out
}

// TestProtocolDocsCoverEveryFrameAndCode keeps docs/protocol.md and docs/asyncapi.yaml
// complete: every frame type and error code in pkg/protocol is described in both.
func TestProtocolDocsCoverEveryFrameAndCode(t *testing.T) {
	prose, err := os.ReadFile(filepath.Join("..", "..", "docs", "protocol.md"))
	require.NoError(t, err)
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "asyncapi.yaml"))
	require.NoError(t, err)
	var spec struct {
		AsyncAPI   string `yaml:"asyncapi"`
		Components struct {
			Messages map[string]any `yaml:"messages"`
			Schemas  struct {
				ErrorCode struct {
					Enum []string `yaml:"enum"`
				} `yaml:"ErrorCode"`
			} `yaml:"schemas"`
		} `yaml:"components"`
		Channels map[string]struct {
			Address string `yaml:"address"`
		} `yaml:"channels"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &spec), "asyncapi.yaml is valid YAML")
	require.Equal(t, "3.0.0", spec.AsyncAPI)

	for _, typ := range protocolConsts(t, "Frame") {
		t.Run("frame "+typ, func(t *testing.T) {
			require.Contains(t, spec.Components.Messages, typ, "asyncapi.yaml components.messages")
			require.Contains(t, string(prose), "| `"+typ+"` |", "protocol.md frame tables")
		})
	}
	for _, code := range protocolConsts(t, "Code") {
		t.Run("code "+code, func(t *testing.T) {
			require.True(t, slices.Contains(spec.Components.Schemas.ErrorCode.Enum, code), "asyncapi.yaml ErrorCode enum")
			require.Contains(t, string(prose), "| `"+code+"` |", "protocol.md error code table")
		})
	}
	var addrs []string
	for _, ch := range spec.Channels {
		addrs = append(addrs, ch.Address)
	}
	for _, a := range []string{"/ws", "/api/v1/events", "/api/v1/frames"} {
		require.Contains(t, addrs, a, "every transport endpoint is a channel")
	}
}
