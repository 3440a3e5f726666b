package server

import (
	"strings"
)

// This file holds what COMMAND DOCS and COMMAND INFO say about each command
// beyond its row in the command table (table.go): Redis 7's summaries,
// argument lists, ACL categories and key-spec flags. The table stays the
// one source of names, arities, keys and dispatch flags; commandDocs is a
// companion keyed by the same names, and TestCommandDocsCoverTable fails if
// either has a name the other lacks.
//
// Why it matters: redis-cli 7 builds its help, hints and Tab completion
// from COMMAND DOCS at start and, given an empty reply, has none at all.

// cmdDoc documents one command or subcommand.
type cmdDoc struct {
	summary    string
	since      string
	group      string // Redis's command group; "module" for throttledb's own commands
	complexity string
	// flags are COMMAND INFO flags beyond those the table row implies
	// (write, readonly, no_auth, and module for the "module" group).
	flags []string
	acl   []string // ACL categories, "@fast" and the like
	// keyFlags are the flags of the command's one key spec (RW, RO, RM,
	// access, update, delete), for a command whose row has keys.
	keyFlags []string
	args     []docArg
	subs     []subDoc // subcommands, in the order Redis lists them
}

// subDoc is a subcommand: its full name ("client|list"), arity (counting
// the command and subcommand names) and documentation. A subcommand's
// doc.flags are all of its COMMAND INFO flags.
type subDoc struct {
	name  string
	arity int
	doc   cmdDoc
}

// docArg is one argument in COMMAND DOCS: name, Redis's argument type
// (string, integer, double, key, pattern, unix-time, pure-token, oneof,
// block), the token that introduces it, its flags (optional, multiple,
// multiple_token), and the arguments of a oneof or block.
type docArg struct {
	name, typ, token string
	flags            []string
	args             []docArg
}

// throttledbModule is the "module" COMMAND DOCS names for throttledb's own
// commands, which Redis would only have through a module.
const throttledbModule = "throttledb"

// peekArgs are THROTTLE.PEEK's arguments; THROTTLE.ACQUIRE's add ID
// (acquireArgs).
var peekArgs = []docArg{
	{name: "key", typ: "key"},
	{name: "interval", typ: "integer"},
	{name: "max", typ: "integer"},
	{name: "ms", typ: "integer", token: "SLOP", flags: []string{"optional"}},
	{name: "n", typ: "integer", token: "COST", flags: []string{"optional"}},
}

// flushArgs are FLUSHALL's and FLUSHDB's: an optional ASYNC or SYNC.
var flushArgs = []docArg{{name: "flush-type", typ: "oneof", flags: []string{"optional"}, args: []docArg{
	{name: "async", typ: "pure-token", token: "ASYNC"},
	{name: "sync", typ: "pure-token", token: "SYNC"},
}}}
var acquireArgs = append(append([]docArg(nil), peekArgs...),
	docArg{name: "token", typ: "string", token: "ID", flags: []string{"optional"}})

var commandDocs = map[string]*cmdDoc{
	"throttle.acquire": {
		summary:    "Takes a slot of a throttle now, reserves a later one, or tells when to retry",
		since:      "0.1.0",
		group:      "module",
		complexity: "O(1)",
		flags:      []string{"denyoom", "fast"},
		acl:        []string{"@write", "@fast"},
		keyFlags:   []string{"RW", "access", "update"},
		args:       acquireArgs,
	},
	"throttle.peek": {
		summary:    "Returns the reply THROTTLE.ACQUIRE would give now, changing nothing",
		since:      "0.1.0",
		group:      "module",
		complexity: "O(1)",
		flags:      []string{"fast"},
		acl:        []string{"@read", "@fast"},
		keyFlags:   []string{"RO", "access"},
		args:       peekArgs,
	},
	"throttle.cancel": {
		summary:    "Gives back a throttle's newest reservation, so that the next caller gets its slot",
		since:      "0.2.0",
		group:      "module",
		complexity: "O(1)",
		flags:      []string{"fast"},
		acl:        []string{"@write", "@fast"},
		keyFlags:   []string{"RW", "update"},
		args: []docArg{
			{name: "key", typ: "key"},
			{name: "valid-at", typ: "integer"},
			{name: "token", typ: "string", token: "ID", flags: []string{"optional"}},
		},
	},
	"throttle.reset": {
		summary:    "Removes the state of throttles",
		since:      "0.1.0",
		group:      "module",
		complexity: "O(N) where N is the number of keys",
		acl:        []string{"@write", "@slow"},
		keyFlags:   []string{"RM", "delete"},
		args:       []docArg{{name: "key", typ: "key", flags: []string{"multiple"}}},
	},
	"cl.throttle": {
		summary:    "Rate limits a key with GCRA, as the redis-cell module's CL.THROTTLE does",
		since:      "0.1.0",
		group:      "module",
		complexity: "O(1)",
		flags:      []string{"denyoom", "fast"},
		acl:        []string{"@write", "@fast"},
		keyFlags:   []string{"RW", "access", "update"},
		args: []docArg{
			{name: "key", typ: "key"},
			{name: "max_burst", typ: "integer"},
			{name: "count_per_period", typ: "integer"},
			{name: "period", typ: "integer"},
			{name: "quantity", typ: "integer", flags: []string{"optional"}},
		},
	},

	"exists": {
		summary: "Determines whether one or more keys exist", since: "1.0.0", group: "generic",
		complexity: "O(N) where N is the number of keys to check",
		flags:      []string{"fast"}, acl: []string{"@keyspace", "@read", "@fast"},
		keyFlags: []string{"RO"},
		args:     []docArg{{name: "key", typ: "key", flags: []string{"multiple"}}},
	},
	"del": {
		summary: "Deletes one or more keys", since: "1.0.0", group: "generic",
		complexity: "O(N) where N is the number of keys that will be removed",
		acl:        []string{"@keyspace", "@write", "@slow"},
		keyFlags:   []string{"RM", "delete"},
		args:       []docArg{{name: "key", typ: "key", flags: []string{"multiple"}}},
	},
	"unlink": {
		summary: "Asynchronously deletes one or more keys", since: "4.0.0", group: "generic",
		complexity: "O(1) for each key removed regardless of its size",
		flags:      []string{"fast"}, acl: []string{"@keyspace", "@write", "@fast"},
		keyFlags: []string{"RM", "delete"},
		args:     []docArg{{name: "key", typ: "key", flags: []string{"multiple"}}},
	},
	"type": {
		summary: "Determines the type of value stored at a key", since: "1.0.0", group: "generic", complexity: "O(1)",
		flags: []string{"fast"}, acl: []string{"@keyspace", "@read", "@fast"},
		keyFlags: []string{"RO"},
		args:     []docArg{{name: "key", typ: "key"}},
	},
	"pttl": {
		summary: "Returns the expiration time in milliseconds of a key", since: "2.6.0", group: "generic", complexity: "O(1)",
		flags: []string{"fast"}, acl: []string{"@keyspace", "@read", "@fast"},
		keyFlags: []string{"RO", "access"},
		args:     []docArg{{name: "key", typ: "key"}},
	},
	"ttl": {
		summary: "Returns the expiration time in seconds of a key", since: "1.0.0", group: "generic", complexity: "O(1)",
		flags: []string{"fast"}, acl: []string{"@keyspace", "@read", "@fast"},
		keyFlags: []string{"RO", "access"},
		args:     []docArg{{name: "key", typ: "key"}},
	},
	"scan": {
		summary: "Iterates over the key names in the database", since: "2.8.0", group: "generic",
		complexity: "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection",
		acl:        []string{"@keyspace", "@read", "@slow"},
		args: []docArg{
			{name: "cursor", typ: "integer"},
			{name: "pattern", typ: "pattern", token: "MATCH", flags: []string{"optional"}},
			{name: "count", typ: "integer", token: "COUNT", flags: []string{"optional"}},
			{name: "type", typ: "string", token: "TYPE", flags: []string{"optional"}},
		},
	},
	"keys": {
		summary: "Returns all key names that match a pattern", since: "1.0.0", group: "generic",
		complexity: "O(N) with N being the number of keys in the database",
		acl:        []string{"@keyspace", "@read", "@slow", "@dangerous"},
		args:       []docArg{{name: "pattern", typ: "pattern"}},
	},
	"randomkey": {
		summary: "Returns a random key name from the database", since: "1.0.0", group: "generic", complexity: "O(1)",
		acl: []string{"@keyspace", "@read", "@slow"},
	},
	"flushall": {
		summary: "Removes all keys from all databases", since: "1.0.0", group: "server",
		complexity: "O(N) where N is the total number of keys in all databases",
		acl:        []string{"@keyspace", "@write", "@slow", "@dangerous"},
		args:       flushArgs,
	},
	"flushdb": {
		summary: "Remove all keys from the current database", since: "1.0.0", group: "server",
		complexity: "O(N) where N is the number of keys in the selected database",
		acl:        []string{"@keyspace", "@write", "@slow", "@dangerous"},
		args:       flushArgs,
	},

	"multi": {
		summary: "Starts a transaction", since: "1.2.0", group: "transactions", complexity: "O(1)",
		flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"},
		acl:   []string{"@fast", "@transaction"},
	},
	"exec": {
		summary: "Executes all commands in a transaction", since: "1.2.0", group: "transactions",
		complexity: "Depends on commands in the transaction",
		flags:      []string{"noscript", "loading", "stale", "skip_slowlog"},
		acl:        []string{"@slow", "@transaction"},
	},
	"discard": {
		summary: "Discards a transaction", since: "2.0.0", group: "transactions",
		complexity: "O(N), when N is the number of queued commands",
		flags:      []string{"noscript", "loading", "stale", "fast", "allow_busy"},
		acl:        []string{"@fast", "@transaction"},
	},

	"ping": {
		summary: "Returns the server's liveliness response", since: "1.0.0", group: "connection", complexity: "O(1)",
		flags: []string{"fast"}, acl: []string{"@fast", "@connection"},
		args: []docArg{{name: "message", typ: "string", flags: []string{"optional"}}},
	},
	"echo": {
		summary: "Returns the given string", since: "1.0.0", group: "connection", complexity: "O(1)",
		flags: []string{"loading", "stale", "fast"}, acl: []string{"@fast", "@connection"},
		args: []docArg{{name: "message", typ: "string"}},
	},
	"quit": {
		summary: "Closes the connection", since: "1.0.0", group: "connection", complexity: "O(1)",
		flags: []string{"allow_busy", "noscript", "loading", "stale", "fast"}, acl: []string{"@fast", "@connection"},
	},
	"select": {
		summary: "Changes the selected database (throttledb has database 0 only)", since: "1.0.0", group: "connection", complexity: "O(1)",
		flags: []string{"loading", "stale", "fast"}, acl: []string{"@keyspace", "@fast"},
		args: []docArg{{name: "index", typ: "integer"}},
	},
	"auth": {
		summary: "Authenticates the connection", since: "1.0.0", group: "connection",
		complexity: "O(N) where N is the number of passwords defined for the user",
		flags:      []string{"noscript", "loading", "stale", "fast", "allow_busy"}, acl: []string{"@fast", "@connection"},
		args: []docArg{
			{name: "username", typ: "string", flags: []string{"optional"}},
			{name: "password", typ: "string"},
		},
	},
	"hello": {
		summary: "Handshakes with the server", since: "6.0.0", group: "connection", complexity: "O(1)",
		flags: []string{"noscript", "loading", "stale", "fast", "allow_busy"}, acl: []string{"@fast", "@connection"},
		args: []docArg{{name: "arguments", typ: "block", flags: []string{"optional"}, args: []docArg{
			{name: "protover", typ: "integer"},
			{name: "auth", typ: "block", token: "AUTH", flags: []string{"optional"}, args: []docArg{
				{name: "username", typ: "string"},
				{name: "password", typ: "string"},
			}},
			{name: "clientname", typ: "string", token: "SETNAME", flags: []string{"optional"}},
		}}},
	},
	"client": {
		summary: "A container for client connection commands", since: "2.4.0", group: "connection",
		complexity: "Depends on subcommand.", acl: []string{"@slow"},
		subs: []subDoc{
			{name: "client|id", arity: 2, doc: cmdDoc{
				summary: "Returns the unique client ID of the connection", since: "5.0.0", group: "connection", complexity: "O(1)",
				flags: []string{"noscript", "loading", "stale"}, acl: []string{"@slow", "@connection"},
			}},
			{name: "client|info", arity: 2, doc: cmdDoc{
				summary: "Returns information about the connection", since: "6.2.0", group: "connection", complexity: "O(1)",
				flags: []string{"noscript", "loading", "stale"}, acl: []string{"@slow", "@connection"},
			}},
			{name: "client|list", arity: -2, doc: cmdDoc{
				summary: "Lists open connections", since: "2.4.0", group: "connection",
				complexity: "O(N) where N is the number of client connections",
				flags:      []string{"admin", "noscript", "loading", "stale"}, acl: []string{"@admin", "@slow", "@dangerous", "@connection"},
				args: []docArg{{name: "client-id", typ: "integer", token: "ID", flags: []string{"optional", "multiple"}}},
			}},
			{name: "client|kill", arity: -3, doc: cmdDoc{
				summary: "Terminates open connections", since: "2.4.0", group: "connection",
				complexity: "O(N) where N is the number of client connections",
				flags:      []string{"admin", "noscript", "loading", "stale"}, acl: []string{"@admin", "@slow", "@dangerous", "@connection"},
				args: []docArg{{name: "filter", typ: "oneof", args: []docArg{
					{name: "ip:port", typ: "string"},
					{name: "new-format", typ: "oneof", flags: []string{"multiple"}, args: []docArg{
						{name: "client-id", typ: "integer", token: "ID", flags: []string{"optional"}},
						{name: "ip:port", typ: "string", token: "ADDR", flags: []string{"optional"}},
						{name: "ip:port", typ: "string", token: "LADDR", flags: []string{"optional"}},
						{name: "username", typ: "string", token: "USER", flags: []string{"optional"}},
						{name: "yes/no", typ: "string", token: "SKIPME", flags: []string{"optional"}},
					}},
				}}},
			}},
			{name: "client|getname", arity: 2, doc: cmdDoc{
				summary: "Returns the name of the connection", since: "2.6.9", group: "connection", complexity: "O(1)",
				flags: []string{"noscript", "loading", "stale"}, acl: []string{"@slow", "@connection"},
			}},
			{name: "client|setname", arity: 3, doc: cmdDoc{
				summary: "Sets the connection name", since: "2.6.9", group: "connection", complexity: "O(1)",
				flags: []string{"noscript", "loading", "stale"}, acl: []string{"@slow", "@connection"},
				args: []docArg{{name: "connection-name", typ: "string"}},
			}},
			{name: "client|setinfo", arity: 4, doc: cmdDoc{
				summary: "Sets information specific to the client or connection", since: "7.2.0", group: "connection", complexity: "O(1)",
				flags: []string{"noscript", "loading", "stale"}, acl: []string{"@slow", "@connection"},
				args: []docArg{{name: "attr", typ: "oneof", args: []docArg{
					{name: "libname", typ: "string", token: "LIB-NAME"},
					{name: "libver", typ: "string", token: "LIB-VER"},
				}}},
			}},
			{name: "client|help", arity: 2, doc: cmdDoc{
				summary: "Returns helpful text about the different subcommands", since: "5.0.0", group: "connection", complexity: "O(1)",
				flags: []string{"loading", "stale"}, acl: []string{"@slow", "@connection"},
			}},
		},
	},
	"command": {
		summary: "Returns detailed information about all commands", since: "2.8.13", group: "server",
		complexity: "O(N) where N is the total number of commands",
		flags:      []string{"loading", "stale"}, acl: []string{"@slow", "@connection"},
		subs: []subDoc{
			{name: "command|count", arity: 2, doc: cmdDoc{
				summary: "Returns a count of commands", since: "2.8.13", group: "server", complexity: "O(1)",
				flags: []string{"loading", "stale"}, acl: []string{"@slow", "@connection"},
			}},
			{name: "command|docs", arity: -2, doc: cmdDoc{
				summary: "Returns documentary information about one, multiple or all commands", since: "7.0.0", group: "server",
				complexity: "O(N) where N is the number of commands to look up",
				flags:      []string{"loading", "stale"}, acl: []string{"@slow", "@connection"},
				args: []docArg{{name: "command-name", typ: "string", flags: []string{"optional", "multiple"}}},
			}},
			{name: "command|info", arity: -2, doc: cmdDoc{
				summary: "Returns information about one, multiple or all commands", since: "2.8.13", group: "server",
				complexity: "O(N) where N is the number of commands to look up",
				flags:      []string{"loading", "stale"}, acl: []string{"@slow", "@connection"},
				args: []docArg{{name: "command-name", typ: "string", flags: []string{"optional", "multiple"}}},
			}},
			{name: "command|list", arity: -2, doc: cmdDoc{
				summary: "Returns a list of command names", since: "7.0.0", group: "server",
				complexity: "O(N) where N is the total number of commands",
				flags:      []string{"loading", "stale"}, acl: []string{"@slow", "@connection"},
				args: []docArg{{name: "filterby", typ: "oneof", token: "FILTERBY", flags: []string{"optional"}, args: []docArg{
					{name: "module-name", typ: "string", token: "MODULE"},
					{name: "category", typ: "string", token: "ACLCAT"},
					{name: "pattern", typ: "pattern", token: "PATTERN"},
				}}},
			}},
		},
	},
	"config": {
		summary: "A container for server configuration commands", since: "2.0.0", group: "server",
		complexity: "Depends on subcommand.", acl: []string{"@slow"},
		subs: []subDoc{
			{name: "config|get", arity: -3, doc: cmdDoc{
				summary: "Returns the effective values of configuration parameters", since: "2.0.0", group: "server",
				complexity: "O(N) when N is the number of configuration parameters provided",
				flags:      []string{"admin", "noscript", "loading", "stale"}, acl: []string{"@admin", "@slow", "@dangerous"},
				args: []docArg{{name: "parameter", typ: "string", flags: []string{"multiple"}}},
			}},
		},
	},
	"info": {
		summary: "Returns information and statistics about the server", since: "1.0.0", group: "server", complexity: "O(1)",
		flags: []string{"loading", "stale"}, acl: []string{"@slow", "@dangerous"},
		args: []docArg{{name: "section", typ: "string", flags: []string{"optional", "multiple"}}},
	},
	"dbsize": {
		summary: "Returns the number of keys in the database", since: "1.0.0", group: "server", complexity: "O(1)",
		flags: []string{"fast"}, acl: []string{"@keyspace", "@read", "@fast"},
	},
	"time": {
		summary: "Returns the cluster time", since: "2.6.0", group: "server", complexity: "O(1)",
		flags: []string{"loading", "stale", "fast"}, acl: []string{"@fast"},
	},
	"role": {
		summary: "Returns the replication role", since: "2.8.12", group: "server", complexity: "O(1)",
		flags: []string{"noscript", "loading", "stale", "fast"}, acl: []string{"@admin", "@fast", "@dangerous"},
	},
	"shutdown": {
		summary: "Stops this node: a leader hands over leadership first (see cluster.md)", since: "1.0.0", group: "server",
		complexity: "O(N) with SAVE, where N is the number of keys, otherwise O(1)",
		flags:      []string{"admin", "noscript", "loading", "stale", "allow_busy"}, acl: []string{"@admin", "@slow", "@dangerous"},
		args: []docArg{
			{name: "save-selector", typ: "oneof", flags: []string{"optional"}, args: []docArg{
				{name: "nosave", typ: "pure-token", token: "NOSAVE"},
				{name: "save", typ: "pure-token", token: "SAVE"},
			}},
			{name: "now", typ: "pure-token", token: "NOW", flags: []string{"optional"}},
			{name: "force", typ: "pure-token", token: "FORCE", flags: []string{"optional"}},
			{name: "abort", typ: "pure-token", token: "ABORT", flags: []string{"optional"}},
		},
	},

	"raft.join": {
		summary: "Adds a node to the cluster (sent by the joining node)", since: "0.1.0", group: "module", complexity: "O(N) where N is the number of members",
		flags: []string{"admin"}, acl: []string{"@admin", "@slow", "@dangerous"},
		args: []docArg{{name: "id", typ: "string"}, {name: "raft-addr", typ: "string"}, {name: "resp-addr", typ: "string"}},
	},
	"raft.remove": {
		summary: "Removes a member from the cluster", since: "0.1.0", group: "module", complexity: "O(N) where N is the number of members",
		flags: []string{"admin"}, acl: []string{"@admin", "@slow", "@dangerous"},
		args: []docArg{{name: "id", typ: "string"}},
	},
	"raft.nodes": {
		summary: "Lists the members of the cluster", since: "0.1.0", group: "module", complexity: "O(N) where N is the number of members",
		acl: []string{"@slow"},
	},
	"raft.leader": {
		summary: "Returns the leader's ID and address", since: "0.1.0", group: "module", complexity: "O(1)",
		flags: []string{"fast"}, acl: []string{"@fast"},
	},
	"raft.transfer": {
		summary: "Hands leadership to another member", since: "0.1.0", group: "module", complexity: "O(1)",
		flags: []string{"admin"}, acl: []string{"@admin", "@slow", "@dangerous"},
		args: []docArg{{name: "id", typ: "string", flags: []string{"optional"}}},
	},
	"raft.snapshot": {
		summary: "Takes a snapshot of this node's state and compacts its log", since: "0.1.0", group: "module",
		complexity: "O(N) where N is the number of keys",
		flags:      []string{"admin"}, acl: []string{"@admin", "@slow", "@dangerous"},
	},
	"raft.backup": {
		summary: "Returns the cluster's whole state as an image RAFT.RESTORE takes", since: "0.1.0", group: "module",
		complexity: "O(N) where N is the number of keys",
		flags:      []string{"admin"}, acl: []string{"@admin", "@slow", "@dangerous"},
	},
	"raft.restore": {
		summary: "Replaces the cluster's whole state with a backup image", since: "0.1.0", group: "module",
		complexity: "O(N) where N is the number of keys in the image",
		flags:      []string{"admin", "denyoom"}, acl: []string{"@admin", "@slow", "@dangerous"},
		args: []docArg{{name: "image", typ: "string"}},
	},
	"raft.digest": {
		summary: "Returns this node's applied index and a digest of its replicated state", since: "0.1.0", group: "module",
		complexity: "O(N) where N is the number of keys",
		acl:        []string{"@slow"},
	},
	"raft.propose": {
		summary: "Forwards proposals from a follower to the leader (between nodes only)", since: "0.1.0", group: "module",
		complexity: "O(N) where N is the number of proposals",
		flags:      []string{"admin"}, acl: []string{"@admin", "@slow", "@dangerous"},
		args: []docArg{{name: "request", typ: "string"}},
	},
	"raft.fwd": {
		summary: "Runs a command forwarded by a follower (between nodes only)", since: "0.1.0", group: "module",
		complexity: "Depends on the command",
		flags:      []string{"admin"}, acl: []string{"@admin", "@slow", "@dangerous"},
		args: []docArg{{name: "command", typ: "string"}, {name: "arg", typ: "string", flags: []string{"optional", "multiple"}}},
	},
}

// flagOrder is the order in which Redis lists COMMAND INFO flags.
var flagOrder = []string{"write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
	"blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking", "fast", "no_auth",
	"may_replicate", "sentinel", "only_sentinel", "no_mandatory_keys", "protected",
	"no_async_loading", "no_multi", "movablekeys", "allow_busy"}

// infoFlags returns a command's COMMAND INFO flags in Redis's order: those
// its table row implies and those its doc adds.
func infoFlags(cmd *command, doc *cmdDoc) []string {
	set := map[string]bool{}
	for _, f := range doc.flags {
		set[f] = true
	}
	if cmd != nil {
		set["write"] = cmd.flags&flagWrite != 0
		set["readonly"] = cmd.flags&flagReadonly != 0
		set["no_auth"] = cmd.flags&flagNoAuth != 0
		set["no_multi"] = cmd.flags&flagNoMulti != 0
		set["module"] = doc.group == "module"
	}
	var out []string
	for _, f := range flagOrder {
		if set[f] {
			out = append(out, f)
		}
	}
	return out
}

// statusSet is words as a set of status replies, the form Redis uses for
// flags and ACL categories.
func statusSet(words []string) setReply {
	out := make(setReply, len(words))
	for i, w := range words {
		out[i] = simpleString(w)
	}
	return out
}

// commandDocsReply is one command's COMMAND DOCS map (the value under its
// name), in the field order of Redis 7.2's addReplyCommandDocs.
func commandDocsReply(doc *cmdDoc) mapReply {
	m := mapReply{"summary", doc.summary} // always set here, as group is
	if doc.since != "" {
		m = append(m, "since", doc.since)
	}
	m = append(m, "group", doc.group)
	if doc.complexity != "" {
		m = append(m, "complexity", doc.complexity)
	}
	if doc.group == "module" {
		m = append(m, "module", throttledbModule)
	}
	if len(doc.args) > 0 {
		m = append(m, "arguments", docArgs(doc.args))
	}
	if len(doc.subs) > 0 {
		subs := make(mapReply, 0, 2*len(doc.subs))
		for i := range doc.subs {
			subs = append(subs, doc.subs[i].name, commandDocsReply(&doc.subs[i].doc))
		}
		m = append(m, "subcommands", subs)
	}
	return m
}

// docArgs is an argument list as Redis 7.2's addReplyCommandArgList
// writes it: name, type, key_spec_index, token, flags, nested arguments,
// display_text.
func docArgs(args []docArg) []any {
	out := make([]any, 0, len(args))
	for _, a := range args {
		m := mapReply{"name", a.name, "type", a.typ}
		if a.typ == "key" {
			// Every command here has at most one key spec.
			m = append(m, "key_spec_index", 0)
		}
		if a.token != "" {
			m = append(m, "token", a.token)
		}
		if len(a.flags) > 0 {
			m = append(m, "flags", statusSet(a.flags))
		}
		if a.typ == "oneof" || a.typ == "block" {
			m = append(m, "arguments", docArgs(a.args))
		} else {
			m = append(m, "display_text", a.name)
		}
		out = append(out, m)
	}
	return out
}

// commandInfo is a command's COMMAND INFO entry, Redis 7's ten fields:
// name, arity, flags, first key, last key, key step, ACL categories, tips,
// key specs, subcommands.
func commandInfo(cmd *command) []any {
	doc := commandDocs[cmd.name]
	step := 0
	if cmd.firstKey > 0 {
		step = 1
	}
	specs := []any{}
	if cmd.firstKey > 0 {
		last := cmd.lastKey - cmd.firstKey // relative to the first key
		if cmd.lastKey < 0 {
			last = cmd.lastKey
		}
		specs = append(specs, keySpec(doc.keyFlags, cmd.firstKey, last))
	}
	subs := make([]any, len(doc.subs))
	for i := range doc.subs {
		subs[i] = subcommandInfo(&doc.subs[i])
	}
	return []any{
		cmd.name, cmd.arity, statusSet(infoFlags(cmd, doc)),
		cmd.firstKey, cmd.lastKey, step,
		statusSet(doc.acl),
		setReply{}, // tips: none apply to a single Raft group
		specs, subs,
	}
}

// subcommandInfo is a subcommand's COMMAND INFO entry; no subcommand here
// has keys.
func subcommandInfo(sub *subDoc) []any {
	return []any{
		sub.name, sub.arity, statusSet(infoFlags(nil, &sub.doc)),
		0, 0, 0,
		statusSet(sub.doc.acl), setReply{}, []any{}, []any{},
	}
}

// keySpec is one key spec: keys from argument index begin, up to lastkey
// (relative to begin; -1: the last argument), one in each step.
func keySpec(flags []string, begin, lastkey int) mapReply {
	return mapReply{
		"flags", statusSet(flags),
		"begin_search", mapReply{"type", "index", "spec", mapReply{"index", begin}},
		"find_keys", mapReply{"type", "range", "spec", mapReply{"lastkey", lastkey, "keystep", 1, "limit", 0}},
	}
}

// findSubcommand returns the subcommand named "parent|sub", or nil.
func findSubcommand(name string) *subDoc {
	parent, _, ok := strings.Cut(name, "|")
	if !ok {
		return nil
	}
	doc := commandDocs[parent]
	if doc == nil {
		return nil
	}
	for i := range doc.subs {
		if doc.subs[i].name == name {
			return &doc.subs[i]
		}
	}
	return nil
}

// globMatch reports whether s matches the glob pattern as Redis's
// stringmatchlen does (*, ?, [abc], [^a-z], \x), optionally ignoring case.
func globMatch(pattern, s string, nocase bool) bool {
	if nocase {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	return glob(pattern, s)
}

func glob(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 1 && p[1] == '*' {
				p = p[1:]
			}
			if len(p) == 1 {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if glob(p[1:], s[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(s) == 0 {
				return false
			}
			p, s = p[1:], s[1:]
		case '[':
			if len(s) == 0 {
				return false
			}
			p = p[1:]
			not := len(p) > 0 && p[0] == '^'
			if not {
				p = p[1:]
			}
			match := false
			for len(p) > 0 && p[0] != ']' {
				switch {
				case p[0] == '\\' && len(p) >= 2:
					p = p[1:]
					match = match || p[0] == s[0]
				case len(p) >= 3 && p[1] == '-':
					lo, hi := p[0], p[2]
					if lo > hi {
						lo, hi = hi, lo
					}
					match = match || (s[0] >= lo && s[0] <= hi)
					p = p[2:]
				default:
					match = match || p[0] == s[0]
				}
				p = p[1:]
			}
			if len(p) > 0 {
				p = p[1:] // the ']'
			}
			if match == not {
				return false
			}
			s = s[1:]
		case '\\':
			if len(p) >= 2 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(s) == 0 || p[0] != s[0] {
				return false
			}
			p, s = p[1:], s[1:]
		}
	}
	return len(s) == 0
}
