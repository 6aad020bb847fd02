// Package dnsd will answer Consul's DNS forms from catalogd's health
// queries, with a cache kept fresh by catalog events (DESIGN.md "Flows",
// DNS).
//
// Not implemented yet; see issue 7.
package dnsd
