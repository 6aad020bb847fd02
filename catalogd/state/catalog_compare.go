package state

import (
	"reflect"
	"slices"
	"strings"

	"github.com/consort-io/consort/pkg/structs"
)

// The same* functions are Consul's IsSame methods: equal in everything but
// the raft indexes, so a re-registration of unchanged data writes nothing.
// Unlike reflect.DeepEqual they take a nil and an empty map or slice as
// equal, which spares writes for requests that differ only in how an empty
// value was encoded.

// sameNode is Consul's Node.IsSame.
func sameNode(a, b *structs.Node) bool {
	return a.ID == b.ID &&
		strings.EqualFold(a.Node, b.Node) &&
		a.Address == b.Address &&
		a.Datacenter == b.Datacenter &&
		mapsEqual(a.TaggedAddresses, b.TaggedAddresses) &&
		mapsEqual(a.Meta, b.Meta)
}

// sameServiceEntry is Consul's ServiceNode.IsSameService.
func sameServiceEntry(a, b *serviceEntry) bool {
	return strings.EqualFold(a.Node, b.Node) && sameService(a.Service, b.Service)
}

func sameService(a, b *structs.NodeService) bool {
	return a.Kind == b.Kind &&
		a.ID == b.ID &&
		a.Service == b.Service &&
		slices.Equal(a.Tags, b.Tags) &&
		a.Address == b.Address &&
		mapsEqual(a.TaggedAddresses, b.TaggedAddresses) &&
		mapsEqual(a.Meta, b.Meta) &&
		a.Port == b.Port &&
		weightsEqual(a.Weights, b.Weights) &&
		a.EnableTagOverride == b.EnableTagOverride
}

func weightsEqual(a, b *structs.Weights) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sameCheck is Consul's HealthCheck.IsSame, plus the check type.
func sameCheck(a, b *structs.HealthCheck) bool {
	return strings.EqualFold(a.Node, b.Node) &&
		a.CheckID == b.CheckID &&
		a.Name == b.Name &&
		a.Status == b.Status &&
		a.Notes == b.Notes &&
		a.Output == b.Output &&
		a.ServiceID == b.ServiceID &&
		a.ServiceName == b.ServiceName &&
		slices.Equal(a.ServiceTags, b.ServiceTags) &&
		a.Type == b.Type &&
		sameDefinition(&a.Definition, &b.Definition)
}

// sameDefinition compares check definitions; both went through
// normalizeDefinition, so DeepEqual's nil-versus-empty distinction does
// not arise for the top-level collections.
func sameDefinition(a, b *structs.CheckType) bool { return reflect.DeepEqual(a, b) }

// mapsEqual compares two maps by content; nil equals empty.
func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v != w {
			return false
		}
	}
	return true
}
