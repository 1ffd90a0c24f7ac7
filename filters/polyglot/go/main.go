// The polyglot reference filter in Go, for the kwex core-module ABI v1
// (guest-sdk/ABI.md). See ../README.md for the behaviour.
//
// Built with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared: a reactor whose
// _initialize starts the Go runtime; //go:wasmexport (Go >= 1.24) exports
// the ABI functions. JSON with encoding/json.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"unsafe"
)

// main is never called in a c-shared (reactor) module.
func main() {}

var (
	keep = []byte{0x00}
	drop = []byte{0x01}
	// The input buffers handed out by alloc, kept reachable (Go's GC does not
	// move objects) until the host calls dealloc.
	lent = map[uint32][]byte{}
	// Namespace -> result bytes: 0x03 then the index name.
	routes = map[string][]byte{}
	// The last error result, kept alive until the next call.
	lastError []byte
)

func result(b []byte) int64 {
	return int64(uint64(uintptr(unsafe.Pointer(&b[0])))<<32 | uint64(len(b)))
}

func fail(msg string) int64 {
	lastError = append([]byte{0x04}, msg...)
	return result(lastError)
}

//go:wasmexport kwex_abi_v1
func kwexAbiV1() {}

//go:wasmexport alloc
func alloc(n uint32) uint32 {
	b := make([]byte, n)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	lent[p] = b
	return p
}

//go:wasmexport dealloc
func dealloc(p, n uint32) {
	delete(lent, p)
}

// object decodes an object into its members, unparsed. Its second result is
// false (and the error nil) when the JSON is valid but not an object.
func object(data []byte) (map[string]json.RawMessage, bool, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, false, nil
		}
		return nil, false, err
	}
	return m, m != nil, nil // a JSON null decodes to a nil map
}

// str is the value of a member if it is a JSON string.
func str(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

//go:wasmexport init
func initFilter(p, n uint32) int64 {
	routes = map[string][]byte{}
	data := lent[p][:n]
	config, isObject, err := object(data)
	if err != nil {
		return fail("config: not valid JSON")
	}
	if !isObject {
		if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
			return result(keep)
		}
		return fail("config: expected a JSON object or null")
	}
	raw, ok := config["routes"]
	if !ok {
		return result(keep)
	}
	// Walk the routes in document order, so that the first bad one is named.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return fail(`config: "routes" must be an object mapping namespaces to index names`)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("config: not valid JSON")
		}
		ns := tok.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return fail("config: not valid JSON")
		}
		index, ok := str(value)
		if !ok {
			routes = map[string][]byte{}
			return fail(`config: the index for namespace "` + ns + `" must be a string`)
		}
		routes[ns] = append([]byte{0x03}, index...)
	}
	return result(keep)
}

//go:wasmexport filter
func filter(p, n uint32) int64 {
	doc, isObject, err := object(lent[p][:n])
	if err != nil {
		return fail("document: not valid JSON")
	}
	if !isObject {
		return fail("document: not a JSON object")
	}
	if t, ok := str(doc["type"]); !ok || t != "Warning" {
		return result(drop)
	}
	metadata, isObject, _ := object(doc["metadata"])
	if !isObject {
		return result(keep)
	}
	ns, ok := str(metadata["namespace"])
	if !ok {
		return result(keep)
	}
	if verdict, ok := routes[ns]; ok {
		return result(verdict)
	}
	return result(keep)
}
