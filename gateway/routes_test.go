package gateway

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/natter-chat/natter/docs"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// TestRouteTableMatchesOpenAPI checks that the route table and docs/openapi.yaml
// name the same operations: a route added without its documentation, or a
// documented operation no route serves, fails here (parameter names may differ:
// {id} in a route is {deviceId} in the document).
func TestRouteTableMatchesOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	require.NoError(t, yaml.Unmarshal(docs.OpenAPI, &doc))
	param := regexp.MustCompile(`\{[^}]+\}`)
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			switch m {
			case "get", "put", "post", "delete", "patch":
				documented = append(documented, strings.ToUpper(m)+" "+param.ReplaceAllString(p, "{}"))
			}
		}
	}
	var served []string
	for _, rt := range (&Gateway{}).routeTable() {
		if rt.method == "" || rt.method == "OPTIONS" || !strings.HasPrefix(rt.path, "/api/v1/") {
			continue // the catch-alls, CORS preflight, /ws, /healthz
		}
		served = append(served, rt.method+" "+param.ReplaceAllString(rt.path, "{}"))
	}
	sort.Strings(documented)
	sort.Strings(served)
	require.Equal(t, documented, served)
}

// TestRouteTableAuth checks the table's one security-relevant column: every
// /api/v1 route needs a bearer token except those that check credentials
// themselves (the HTTP fallback takes the token as the WebSocket does; the dev
// token endpoint answers only in dev mode).
func TestRouteTableAuth(t *testing.T) {
	self := map[string]bool{"GET " + SSEPath: true, "POST " + FramesPath: true, "POST /api/v1/dev/token": true}
	for _, rt := range (&Gateway{}).routeTable() {
		key := rt.method + " " + rt.path
		if rt.method == "" || rt.method == "OPTIONS" || !strings.HasPrefix(rt.path, "/api/v1/") {
			continue
		}
		if self[key] {
			require.Equal(t, authSelf, rt.auth, key)
			require.NotNil(t, rt.h, key)
			continue
		}
		require.Equal(t, authToken, rt.auth, key)
		require.NotNil(t, rt.withID, key)
	}
}
