// Package ts holds Natter's TypeScript SDK (src/, built to dist/ by tsc and
// committed) and embeds the built ES modules, which the gateway serves at /sdk/ for
// the web chat and for browsers that load the SDK straight from the server.
package ts

import "embed"

// Dist is the built SDK: dist/natter.js and the modules it imports, with their .d.ts.
//
//go:embed dist/*.js dist/*.d.ts
var Dist embed.FS
