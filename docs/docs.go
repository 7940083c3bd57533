// Package docs gives Go code the documents that are also contracts: the
// log's JSON Schema (log.schema.json), embedded so that tools and tests
// validate logs against the very file users read.
package docs

import _ "embed"

// LogSchema is log.schema.json: the JSON Schema (2020-12) of one line of a
// vtrace log.
//
//go:embed log.schema.json
var LogSchema []byte
