package state

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/consort-io/consort/pkg/structs"
)

// Limits on service meta, Consul's.
const (
	metaMaxKeyPairs       = 64
	metaKeyMaxLength      = 128
	metaValueMaxLength    = 512
	metaKeyReservedPrefix = "consul-"
)

var metaKeyFormat = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`).MatchString

// prepareRegisterTxn does what Consul's Catalog.Register endpoint does
// before it applies a registration: fills the defaults (service ID from its
// name, a check's node from the request and ID from its name, its type from
// its definition), folds Check into Checks after Checks, and refuses what
// the endpoint refuses, with its words. The "unknown service" test, which
// Consul makes against the state it reads, is made here against the state
// this command applies to. It returns the checks to register.
func prepareRegisterTxn(tx *memdb.Txn, req *structs.RegisterRequest) ([]*structs.HealthCheck, error) {
	if req.Node == "" {
		return nil, errors.New("Must provide node")
	}
	if err := noNUL("node name", req.Node); err != nil {
		return nil, err
	}
	if req.ID != "" {
		if err := parseUUID(req.ID); err != nil {
			return nil, fmt.Errorf("Bad node ID: %v", err)
		}
	}
	if req.Address == "" && !req.SkipNodeUpdate {
		return nil, errors.New("Must provide address if SkipNodeUpdate is not set")
	}

	if svc := req.Service; svc != nil {
		if svc.ID == "" && svc.Service != "" {
			svc.ID = svc.Service
		}
		if svc.ID != "" && svc.Service == "" {
			return nil, errors.New("Must provide service name (Service.Service) when service ID is provided")
		}
		if svc.ID == "" {
			return nil, errors.New("failed inserting service: missing service name")
		}
		if err := noNUL("service ID", svc.ID); err != nil {
			return nil, err
		}
		if err := noNUL("service name", svc.Service); err != nil {
			return nil, err
		}
		if isAnyAddr(svc.Address) {
			return nil, errors.New("Invalid service address")
		}
	}

	checks := make([]*structs.HealthCheck, 0, len(req.Checks)+1)
	for _, chk := range req.Checks {
		if chk != nil {
			checks = append(checks, chk)
		}
	}
	if req.Check != nil {
		checks = append(checks, req.Check)
	}
	for _, chk := range checks {
		if chk.Node == "" {
			chk.Node = req.Node
		}
		if chk.CheckID == "" && chk.Name != "" {
			chk.CheckID = chk.Name
		}
		if chk.Type == "" {
			chk.Type = checkType(&chk.Definition)
		}
		normalizeDefinition(&chk.Definition)
		if !strings.EqualFold(chk.Node, req.Node) {
			return nil, fmt.Errorf("Node '%s' for check '%s' doesn't match register request node '%s'",
				chk.Node, chk.CheckID, req.Node)
		}
		if chk.CheckID == "" {
			return nil, fmt.Errorf("failed inserting check on node %q: missing check ID", chk.Node)
		}
		if err := noNUL("check ID", chk.CheckID); err != nil {
			return nil, err
		}
		if err := noNUL("service ID", chk.ServiceID); err != nil {
			return nil, err
		}
		if chk.ServiceID == "" || (req.Service != nil && req.Service.ID == chk.ServiceID) {
			continue
		}
		// Consul looks the ID up in a map of the node's services: exact
		// case, unlike the state store's own lookups.
		e, err := getServiceTxn(tx, req.Node, chk.ServiceID)
		if err != nil {
			return nil, err
		}
		if e == nil || e.Service.ID != chk.ServiceID {
			return nil, fmt.Errorf("Unknown service ID '%s' for check ID '%s'", chk.ServiceID, chk.CheckID)
		}
	}
	return checks, nil
}

// validateServiceMeta is Consul's ValidateServiceMetadata for a typical
// service (keys visited in order, so the first error is the same on every
// replica).
func validateServiceMeta(meta map[string]string) error {
	if len(meta) > metaMaxKeyPairs {
		// Consul says "Node" here for services too.
		return fmt.Errorf("Node metadata cannot contain more than %d key/value pairs", metaMaxKeyPairs)
	}
	for _, key := range sortedKeys(meta) {
		value := meta[key]
		var err error
		switch {
		case key == "":
			err = errors.New("Key cannot be blank")
		case !metaKeyFormat(key):
			err = errors.New("Key contains invalid characters")
		case len(key) > metaKeyMaxLength:
			err = fmt.Errorf("Key is too long (limit: %d characters)", metaKeyMaxLength)
		case strings.HasPrefix(key, metaKeyReservedPrefix):
			err = fmt.Errorf("Key prefix '%s' is reserved for internal use", metaKeyReservedPrefix)
		case len(value) > metaValueMaxLength:
			err = fmt.Errorf("Value is too long (limit: %d characters)", metaValueMaxLength)
		}
		if err != nil {
			return fmt.Errorf("Couldn't load metadata pair ('%s', '%s'): %s", key, value, err)
		}
	}
	return nil
}

// parseUUID checks a node ID as go-uuid's ParseUUID does, with its errors.
func parseUUID(id string) error {
	if len(id) != 36 {
		return errors.New("uuid string is wrong length")
	}
	if id[8] != '-' || id[13] != '-' || id[18] != '-' || id[23] != '-' {
		return errors.New("uuid is improperly formatted")
	}
	_, err := hex.DecodeString(id[0:8] + id[9:13] + id[14:18] + id[19:23] + id[24:36])
	return err
}

// isAnyAddr is Consul's ipaddr.IsAny for a string.
func isAnyAddr(a string) bool { return a == "0.0.0.0" || a == "::" || a == "[::]" }

// noNUL refuses identifiers with a NUL byte: index keys use NUL as a
// separator, so such names could alias other objects.
func noNUL(what, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("invalid %s %q: contains a NUL byte", what, s)
	}
	return nil
}

// checkType names how a check runs, from its definition, as Consul's
// CheckType.Type does; "" for a check with no definition (catalog-only).
func checkType(d *structs.CheckType) string {
	switch {
	case d.GRPC != "":
		return "grpc"
	case d.HTTP != "":
		return "http"
	case d.TTL > 0:
		return "ttl"
	case d.TCP != "":
		return "tcp"
	case d.UDP != "":
		return "udp"
	case d.AliasNode != "" || d.AliasService != "":
		return "alias"
	case len(d.Args) > 0:
		return "script"
	case d.H2PING != "":
		return "h2ping"
	}
	return ""
}

// normalizeDefinition stores empty collections of the omitempty fields as
// nil: msgpack drops them, so a replica restored from a snapshot would hold
// nil where this one held an empty value.
func normalizeDefinition(d *structs.CheckType) {
	if len(d.Header) == 0 {
		d.Header = nil
	}
	if len(d.Args) == 0 {
		d.Args = nil
	}
}
