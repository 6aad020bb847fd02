// Package agent is this node's agent state in catalogd: the services and
// checks registered on this node, through the HTTP API (/v1/agent/*) or
// from service definition files, which are this node's truth in the
// catalog.
//
// Each service and check is an entry with an in-sync flag; a deregistered
// entry is kept, marked deleted, until the catalog has forgotten it.
// Entries are persisted in a directory (one JSON file each, written
// atomically) so they, and checks' last status, survive a restart.
//
// Anti-entropy (Run) keeps the catalog in step: a change locally is
// written at once, and a periodic full diff against the catalog's records
// of this node writes only what differs, including deregistering catalog
// entries of this node the agent does not have (serfHealth excepted).
// Writes go through a Catalog, which catalogd implements over raftd.
//
// Definition files use Consul's format, HCL or JSON: `service {}`,
// `services [...]`, `check {}` and `checks [...]`; ParseDefinitions reads
// one, LoadDefinitions a set of files and directories, and Reload makes
// the file-sourced entries what the files now say.
//
// The agent runs no checks: healthd does, fed by catalogd from
// RunnableChecks and Changed, and reports back through UpdateCheck.
package agent
