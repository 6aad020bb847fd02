// Package dnsd answers Consul's DNS interface (DESIGN.md "Flows", DNS)
// from a local view of the catalog, so lookups keep working while the
// servers elect a leader or catalogd restarts.
//
// # The view
//
// dnsd loads every service's instances with their checks, and every node,
// from catalogd's HTTP API with ?stale (/v1/catalog/services,
// /v1/health/service/<s>, /v1/catalog/nodes), and keeps the result as an
// immutable view that queries read without locks. Catalog and health
// events on the bus (consort.catalog.service.<s>, consort.catalog.node.<n>,
// consort.health.<s>) mark names to reload; one refresher gathers them for
// Config.Debounce and reloads only those. A full reload runs every
// Config.MaxAge (5 s) whatever the bus does, and at once on every bus
// (re)connect. When catalogd is unreachable the last view stays and is
// answered from; its age is published as TXT records at
// status.consort.<domain> (StatusLabel).
//
// Reading over HTTP is a first step: a catalogd socket method serving the
// view (and later precomputed wire answers) is to replace it.
//
// # Answers
//
// The forms are Consul's: <node>.node[.<dc>[.dc]].<domain>,
// [<tag>.]<service>.service[.<dc>[.dc]].<domain>,
// _<service>._<tag>[.service][.<dc>].<domain> (RFC 2782, _tcp = no tag),
// <hex>.addr[.<dc>].<domain>, reverse names under in-addr.arpa and
// ip6.arpa, SOA and NS at the apex. See README.md for the details of each,
// of trimming and of what is not done yet.
package dnsd
