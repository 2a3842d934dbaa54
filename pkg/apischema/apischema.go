// Package apischema validates Natter's traffic against its published descriptions:
// frames against docs/asyncapi.yaml, REST responses against docs/openapi.yaml. The
// end-to-end tests run every frame and response they see through it (transport.go),
// so the documents cannot drift from the wire unnoticed.
package apischema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/natter-chat/natter/docs"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// Resource URLs of the two documents; a $ref from one to the other
// ("asyncapi.yaml#/components/schemas/Message") resolves relative to them.
const (
	asyncURL = "https://natter.invalid/docs/asyncapi.yaml"
	openURL  = "https://natter.invalid/docs/openapi.yaml"
)

// Validator checks frames and REST responses. It is safe for concurrent use.
type Validator struct {
	frames    map[string]*jsonschema.Schema // server→client frame payloads by type
	close     *jsonschema.Schema            // the HTTP fallback's close event
	mux       *http.ServeMux                // OpenAPI paths, to find a request's operation
	errorBody *jsonschema.Schema            // components/schemas/Error
	responses map[string]map[string]response
}

// response is one documented response of an operation: the schema of its JSON body,
// nil when it has none or is not JSON.
type response struct {
	json   *jsonschema.Schema
	noBody bool
}

// New loads and compiles both documents. It fails when either is not valid YAML,
// a schema does not compile, or a $ref does not resolve.
func New() (*Validator, error) {
	async, err := yamlDoc(docs.AsyncAPI)
	if err != nil {
		return nil, fmt.Errorf("apischema: asyncapi.yaml: %w", err)
	}
	open, err := yamlDoc(docs.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("apischema: openapi.yaml: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(asyncURL, async); err != nil {
		return nil, fmt.Errorf("apischema: asyncapi.yaml: %w", err)
	}
	if err := c.AddResource(openURL, open); err != nil {
		return nil, fmt.Errorf("apischema: openapi.yaml: %w", err)
	}
	v := &Validator{frames: map[string]*jsonschema.Schema{}, mux: http.NewServeMux(),
		responses: map[string]map[string]response{}}
	if err := v.loadFrames(c, async); err != nil {
		return nil, err
	}
	if err := v.loadOperations(c, open); err != nil {
		return nil, err
	}
	if v.errorBody, err = c.Compile(openURL + "#/components/schemas/Error"); err != nil {
		return nil, fmt.Errorf("apischema: openapi.yaml Error: %w", err)
	}
	return v, nil
}

// loadFrames compiles the payload of every message the server sends: those of the
// operations whose action is "send" (the server's view, as AsyncAPI 3 has it).
func (v *Validator) loadFrames(c *jsonschema.Compiler, doc any) error {
	msgs, _ := dig(doc, "components", "messages").(map[string]any)
	if len(msgs) == 0 {
		return errors.New("apischema: asyncapi.yaml has no components.messages")
	}
	for name := range msgs {
		sch, err := c.Compile(asyncURL + "#/components/messages/" + name + "/payload")
		if err != nil {
			return fmt.Errorf("apischema: asyncapi.yaml message %s: %w", name, err)
		}
		if name == "close" {
			v.close = sch
			continue
		}
		v.frames[name] = sch
	}
	if v.close == nil {
		return errors.New("apischema: asyncapi.yaml has no close message")
	}
	return nil
}

var methods = []string{"get", "put", "post", "delete", "patch", "options", "head"}

// loadOperations registers every path and method of the OpenAPI document on a
// ServeMux (so a request finds its operation by the same rules the gateway's mux
// uses) and compiles the JSON schema of each documented response.
func (v *Validator) loadOperations(c *jsonschema.Compiler, doc any) error {
	paths, _ := dig(doc, "paths").(map[string]any)
	if len(paths) == 0 {
		return errors.New("apischema: openapi.yaml has no paths")
	}
	for path, item := range paths {
		for _, m := range methods {
			op, ok := dig(item, m).(map[string]any)
			if !ok {
				continue
			}
			key := strings.ToUpper(m) + " " + path
			resps, _ := op["responses"].(map[string]any)
			if len(resps) == 0 {
				return fmt.Errorf("apischema: openapi.yaml %s has no responses", key)
			}
			byStatus := map[string]response{}
			for status, r := range resps {
				r = v.deref(doc, r)
				content, _ := dig(r, "content").(map[string]any)
				var resp response
				if len(content) == 0 {
					resp.noBody = true
				}
				if _, ok := content["application/json"]; ok {
					ptr := "#/paths/" + escape(path) + "/" + m + "/responses/" + status
					if ref, ok := dig(resps[status], "$ref").(string); ok {
						ptr = ref
					}
					sch, err := c.Compile(openURL + ptr + "/content/application~1json/schema")
					if err != nil {
						return fmt.Errorf("apischema: openapi.yaml %s %s: %w", key, status, err)
					}
					resp.json = sch
				}
				byStatus[status] = resp
			}
			v.responses[key] = byStatus
			v.mux.HandleFunc(key, func(http.ResponseWriter, *http.Request) {})
		}
	}
	return nil
}

// deref follows a response's $ref within the document.
func (v *Validator) deref(doc, r any) any {
	ref, ok := dig(r, "$ref").(string)
	if !ok || !strings.HasPrefix(ref, "#/") {
		return r
	}
	var keys []string
	for _, k := range strings.Split(ref[2:], "/") {
		keys = append(keys, strings.ReplaceAll(strings.ReplaceAll(k, "~1", "/"), "~0", "~"))
	}
	return dig(doc, keys...)
}

// Frame validates one server→client frame (a WebSocket message or an SSE event's
// data) against its type's payload schema. An unknown type is an error too.
func (v *Validator) Frame(raw []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("frame is not JSON: %w", err)
	}
	typ, _ := dig(inst, "type").(string)
	sch := v.frames[typ]
	if sch == nil {
		return fmt.Errorf("frame type %q is not a message of docs/asyncapi.yaml", typ)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("%s frame does not match docs/asyncapi.yaml: %w", typ, err)
	}
	return nil
}

// CloseEvent validates the data of the HTTP fallback's close event.
func (v *Validator) CloseEvent(raw []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("close event is not JSON: %w", err)
	}
	if err := v.close.Validate(inst); err != nil {
		return fmt.Errorf("close event does not match docs/asyncapi.yaml: %w", err)
	}
	return nil
}

// Operation returns the OpenAPI operation ("GET /api/v1/chats/{id}") that serves
// method and path, or "" if none does.
func (v *Validator) Operation(method, path string) string {
	r, err := http.NewRequest(method, path, nil)
	if err != nil {
		return ""
	}
	_, pattern := v.mux.Handler(r)
	if pattern == "" || !strings.HasPrefix(pattern, method+" ") {
		return "" // the mux's 404/405
	}
	return pattern
}

// Response validates a REST response: its operation must exist in the document,
// document its status (or "default", or a range like "4XX"), and its JSON body must
// match that response's schema. contentType is the response's Content-Type. A path
// or method the document does not have may only answer 404 with an error body (as
// the gateway does for every unknown path under /api/).
func (v *Validator) Response(method, path string, status int, contentType string, body []byte) error {
	op := v.Operation(method, path)
	if op == "" {
		if status != http.StatusNotFound {
			return fmt.Errorf("%s %s is not an operation of docs/openapi.yaml, yet answered %d", method, path, status)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("%s %s 404: body is not JSON: %w", method, path, err)
		}
		if err := v.errorBody.Validate(inst); err != nil {
			return fmt.Errorf("%s %s 404: body is not an error of docs/openapi.yaml: %w", method, path, err)
		}
		return nil
	}
	byStatus := v.responses[op]
	s := strconv.Itoa(status)
	r, ok := byStatus[s]
	if !ok {
		r, ok = byStatus[s[:1]+"XX"]
	}
	if !ok {
		r, ok = byStatus["default"]
	}
	if !ok {
		return fmt.Errorf("%s: status %d is not documented in docs/openapi.yaml (documented: %s)", op, status, keys(byStatus))
	}
	if r.noBody {
		if len(bytes.TrimSpace(body)) > 0 && status != http.StatusNotModified {
			return fmt.Errorf("%s %d: docs/openapi.yaml documents no body, got %d bytes", op, status, len(body))
		}
		return nil
	}
	if r.json == nil {
		return nil // a documented non-JSON body (media bytes)
	}
	if !strings.HasPrefix(contentType, "application/json") {
		return fmt.Errorf("%s %d: Content-Type %q, docs/openapi.yaml documents application/json", op, status, contentType)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s %d: body is not JSON: %w", op, status, err)
	}
	if err := r.json.Validate(inst); err != nil {
		return fmt.Errorf("%s %d: body does not match docs/openapi.yaml: %w", op, status, err)
	}
	return nil
}

func keys(m map[string]response) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// yamlDoc parses YAML into the JSON value jsonschema expects (json.Number numbers).
func yamlDoc(data []byte) (any, error) {
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonschema.UnmarshalJSON(bytes.NewReader(j))
}

// dig walks nested objects by key; nil when a step is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// escape makes a JSON pointer token of s (RFC 6901), percent-encoding what a URI
// fragment cannot hold.
func escape(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
	return strings.NewReplacer("{", "%7B", "}", "%7D").Replace(s)
}
