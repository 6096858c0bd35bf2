package httpapi

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
)

var pathParam = regexp.MustCompile(`\{([^}.]+)(\.\.\.)?\}`)

// OpenAPI is an OpenAPI 3 document of the routes whose paths start with
// one of prefixes, generated from the route table so that it cannot drift
// from what is served: each operation says the role it needs
// (x-forge-access) and whether it takes a token.
func OpenAPI(title, apiVersion string, routes []Route, prefixes ...string) ([]byte, error) {
	type param struct {
		Name     string            `json:"name"`
		In       string            `json:"in"`
		Required bool              `json:"required"`
		Schema   map[string]string `json:"schema"`
	}
	type op struct {
		Summary     string                       `json:"summary"`
		OperationID string                       `json:"operationId"`
		Parameters  []param                      `json:"parameters,omitempty"`
		RequestBody map[string]any               `json:"requestBody,omitempty"`
		Security    []map[string][]string        `json:"security"`
		Access      string                       `json:"x-forge-access"`
		Responses   map[string]map[string]string `json:"responses"`
	}
	paths := map[string]map[string]op{}
	for _, rt := range routes {
		method, path, ok := strings.Cut(rt.Pattern, " ")
		if !ok || !hasPrefix(path, prefixes) {
			continue
		}
		o := op{Summary: rt.Summary, OperationID: method + " " + path, Access: rt.Access.String(), Security: []map[string][]string{},
			Responses: map[string]map[string]string{"200": {"description": "OK"}, "default": {"description": "an error: {\"error_code\", \"message\"} ({\"error\"} under /v2)"}}}
		if o.Summary == "" {
			o.Summary = rt.Pattern
		}
		if rt.Access != Public {
			o.Security = []map[string][]string{{"bearer": {}}}
			o.Responses["401"] = map[string]string{"description": "no live token"}
			o.Responses["403"] = map[string]string{"description": "the token's role is below " + rt.Access.String()}
		}
		for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
			o.Parameters = append(o.Parameters, param{Name: m[1], In: "path", Required: true, Schema: map[string]string{"type": "string"}})
		}
		switch {
		case rt.Body == BodyUpload:
			o.RequestBody = map[string]any{"content": map[string]any{"application/octet-stream": map[string]any{}}}
		case method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch:
			o.RequestBody = map[string]any{"content": map[string]any{"application/json": map[string]any{}}}
		}
		p := pathParam.ReplaceAllString(path, "{$1}")
		if paths[p] == nil {
			paths[p] = map[string]op{}
		}
		paths[p][strings.ToLower(method)] = o
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]string{"title": title, "version": apiVersion},
		"paths":   paths,
		"components": map[string]any{"securitySchemes": map[string]any{
			"bearer": map[string]string{"type": "http", "scheme": "bearer"},
		}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func hasPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}
