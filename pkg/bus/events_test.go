package bus

import (
	"encoding/json"
	"testing"
)

// TestCatalogPayloadJSON pins the JSON field names subscribers read.
func TestCatalogPayloadJSON(t *testing.T) {
	for _, tt := range []struct {
		payload any
		want    string
	}{
		{CatalogNode{Kind: KindCatalogNode, Op: CatalogOpRegister, Node: "n1", Index: 7},
			`{"kind":"catalog.node.v1","op":"register","node":"n1","index":7}`},
		{CatalogService{Kind: KindCatalogService, Op: CatalogOpUpdate, Service: "web", ServiceID: "web-1", Node: "n1", Index: 8},
			`{"kind":"catalog.service.v1","op":"update","service":"web","service_id":"web-1","node":"n1","index":8}`},
		{Health{Kind: KindHealth, Op: CatalogOpDeregister, Node: "n1", CheckID: "c", ServiceID: "web-1", ServiceName: "web",
			OldStatus: "passing", Output: "bye", Index: 9},
			`{"kind":"health.v1","op":"deregister","node":"n1","check_id":"c","service_id":"web-1","service_name":"web","old_status":"passing","new_status":"","output":"bye","index":9}`},
	} {
		b, err := json.Marshal(tt.payload)
		if err != nil || string(b) != tt.want {
			t.Errorf("%T = %s, %v\nwant %s", tt.payload, b, err, tt.want)
		}
	}
}
