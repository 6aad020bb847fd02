// Package structs holds plain values shared by daemons and API packages.
package structs

// KVEntry is one key in the KV store, with Consul's fields.
type KVEntry struct {
	Key         string `codec:"key"`
	Value       []byte `codec:"value"`
	Flags       uint64 `codec:"flags"`
	Session     string `codec:"session,omitempty"`
	LockIndex   uint64 `codec:"lock_index"`
	CreateIndex uint64 `codec:"create_index"`
	ModifyIndex uint64 `codec:"modify_index"`
}
