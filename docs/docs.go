// Package docs embeds the machine-readable descriptions of Natter's APIs that ship
// beside the prose: asyncapi.yaml (the client protocol's frames) and openapi.yaml
// (the REST API). pkg/apischema validates traffic against them.
package docs

import _ "embed"

// AsyncAPI is asyncapi.yaml: every frame of the client protocol.
//
//go:embed asyncapi.yaml
var AsyncAPI []byte

// OpenAPI is openapi.yaml: every REST endpoint of the gateway.
//
//go:embed openapi.yaml
var OpenAPI []byte
