package protocol

import (
	"fmt"
	"strconv"
	"strings"
)

// TypeScriptPath is where the TypeScript client's copy of the tables
// lives, from the repository root.
const TypeScriptPath = "web/packages/client/src/protocol.gen.ts"

// TypeScript renders the tables as the TypeScript module the web client
// imports. The tests compare it with the file at TypeScriptPath, so the
// two languages cannot disagree on a code.
func TypeScript() string {
	var b strings.Builder
	b.WriteString("// Code generated from internal/protocol by `go test ./internal/protocol -update`. DO NOT EDIT.\n\n")
	b.WriteString("/** The close codes the server sends: what each means, whether to reconnect, and the least wait before it. */\n")
	b.WriteString("export const CLOSE_CODES = {\n")
	for _, c := range Closes {
		fmt.Fprintf(&b, "  %d: { name: %s, reconnect: %t, minDelayMs: %d, meaning: %s },\n",
			c.Code, strconv.Quote(c.Name), c.Reconnect, c.MinDelay.Milliseconds(), strconv.Quote(c.Meaning))
	}
	b.WriteString("} as const;\n\n")
	b.WriteString("export type CloseName = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES][\"name\"];\n\n")
	b.WriteString("/** The error codes of replies: what each means, and whether the same request may succeed later. */\n")
	b.WriteString("export const ERROR_CODES = {\n")
	for _, e := range Errors {
		fmt.Fprintf(&b, "  %s: { retry: %t, meaning: %s },\n", e.Code, e.Retry, strconv.Quote(e.Meaning))
	}
	b.WriteString("} as const;\n\n")
	b.WriteString("export type ErrorCode = keyof typeof ERROR_CODES;\n\n")
	b.WriteString("/** The channel kinds a client may subscribe to (\"kind:key\"). */\n")
	b.WriteString("export const CHANNEL_KINDS = {\n")
	for _, c := range Channels {
		fmt.Fprintf(&b, "  %s: { key: %s, meaning: %s },\n", c.Kind, strconv.Quote(c.Key), strconv.Quote(c.Meaning))
	}
	b.WriteString("} as const;\n\n")
	b.WriteString("export type ChannelKind = keyof typeof CHANNEL_KINDS;\n")
	return b.String()
}

// Describe renders the tables as one paragraph of Markdown, for the OpenAPI
// description of /ws.
func Describe() string {
	var b strings.Builder
	b.WriteString("Close codes: ")
	for i, c := range Closes {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "`%d` %s (%s", c.Code, c.Name, c.Meaning)
		switch {
		case !c.Reconnect:
			b.WriteString("; do not reconnect")
		case c.MinDelay > 0:
			fmt.Fprintf(&b, "; reconnect after at least %v", c.MinDelay)
		}
		b.WriteString(")")
	}
	b.WriteString(". Reply error codes: ")
	for i, e := range Errors {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "`%s` (%s)", e.Code, e.Meaning)
	}
	b.WriteString(". Channels: ")
	for i, c := range Channels {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "`%s:<%s>` (%s)", c.Kind, c.Key, c.Meaning)
	}
	b.WriteString(".")
	return b.String()
}
