package healthd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The grpc.health.v1 protocol, written out: healthd speaks it over
// net/http's HTTP/2 client instead of linking google.golang.org/grpc.
//
//	service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
//	message HealthCheckRequest  { string service = 1; }
//	message HealthCheckResponse { ServingStatus status = 1; }
//	enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
//
// A gRPC message on the wire is a 5-byte prefix (compressed flag, 4-byte
// big-endian length) and the protobuf bytes; the call's outcome is in the
// grpc-status and grpc-message trailers (or headers, for a
// "trailers-only" answer).

// healthCheckPath is the HTTP/2 path of grpc.health.v1.Health/Check.
const healthCheckPath = "/grpc.health.v1.Health/Check"

// maxGRPCMessage bounds the answer healthd reads; a health answer is a
// few bytes.
const maxGRPCMessage = 64 << 10

// servingSERVING is the ServingStatus a healthy server answers.
const servingSERVING = 1

// servingStatusName names a ServingStatus as grpc-go's String does.
func servingStatusName(s int64) string {
	switch s {
	case 0:
		return "UNKNOWN"
	case 1:
		return "SERVING"
	case 2:
		return "NOT_SERVING"
	case 3:
		return "SERVICE_UNKNOWN"
	}
	return strconv.FormatInt(s, 10)
}

// grpcCodeNames are the names of gRPC status codes, as codes.Code.String.
var grpcCodeNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
	"NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
	"FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
	"Internal", "Unavailable", "DataLoss", "Unauthenticated",
}

// gRPC status codes healthd produces itself.
const (
	grpcUnknown          = 2
	grpcDeadlineExceeded = 4
	grpcUnimplemented    = 12
	grpcInternal         = 13
	grpcUnavailable      = 14
	grpcPermission       = 7
	grpcUnauthenticated  = 16
)

// rpcError is a failed gRPC call, printed as grpc-go prints a status
// error, so outputs read as they do under Consul.
type rpcError struct {
	code int
	desc string
}

func (e *rpcError) Error() string {
	name := "Code(" + strconv.Itoa(e.code) + ")"
	if e.code >= 0 && e.code < len(grpcCodeNames) {
		name = grpcCodeNames[e.code]
	}
	return fmt.Sprintf("rpc error: code = %s desc = %s", name, e.desc)
}

// encodeHealthRequest returns the framed HealthCheckRequest for service.
func encodeHealthRequest(service string) []byte {
	var msg []byte
	if service != "" {
		msg = append(msg, 0x0a) // field 1, length-delimited
		msg = binary.AppendUvarint(msg, uint64(len(service)))
		msg = append(msg, service...)
	}
	out := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:], uint32(len(msg)))
	return append(out, msg...)
}

// decodeHealthAnswer reads a Check answer: the HTTP status, headers,
// trailers and body. It returns the ServingStatus, or an *rpcError when
// the call failed, or another error when the answer is not gRPC.
func decodeHealthAnswer(status int, header, trailer http.Header, body []byte) (int64, error) {
	if status != http.StatusOK {
		return 0, &rpcError{code: httpStatusCode(status), desc: fmt.Sprintf("unexpected HTTP status code received from server: %d (%s)", status, http.StatusText(status))}
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "application/grpc") {
		return 0, &rpcError{code: grpcInternal, desc: fmt.Sprintf("transport: received unexpected content-type %q", ct)}
	}
	code, msg, ok := grpcStatus(trailer)
	if !ok {
		code, msg, ok = grpcStatus(header) // trailers-only answer
	}
	if !ok {
		return 0, &rpcError{code: grpcInternal, desc: "server closed the stream without sending trailers"}
	}
	if code != 0 {
		return 0, &rpcError{code: code, desc: msg}
	}
	m, err := unframe(body)
	if err != nil {
		return 0, &rpcError{code: grpcInternal, desc: err.Error()}
	}
	s, err := decodeHealthResponse(m)
	if err != nil {
		return 0, &rpcError{code: grpcInternal, desc: "grpc: failed to unmarshal the received message: " + err.Error()}
	}
	return s, nil
}

// grpcStatus reads grpc-status and grpc-message from h.
func grpcStatus(h http.Header) (int, string, bool) {
	v := h.Get("Grpc-Status")
	if v == "" {
		return 0, "", false
	}
	code, err := strconv.Atoi(v)
	if err != nil || code < 0 {
		return grpcUnknown, fmt.Sprintf("malformed grpc-status %q", v), true
	}
	msg := h.Get("Grpc-Message")
	if m, err := url.PathUnescape(msg); err == nil {
		msg = m
	}
	return code, msg, true
}

// httpStatusCode maps a non-200 HTTP status to a gRPC code as grpc-go does.
func httpStatusCode(status int) int {
	switch status {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermission
	case http.StatusNotFound:
		return grpcUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return grpcUnavailable
	}
	return grpcUnknown
}

// unframe returns the one message of a unary answer.
func unframe(b []byte) ([]byte, error) {
	if len(b) < 5 {
		return nil, fmt.Errorf("grpc: answer of %d bytes has no message", len(b))
	}
	if b[0] != 0 {
		return nil, errors.New("grpc: compressed answer, but no compression was offered")
	}
	n := binary.BigEndian.Uint32(b[1:5])
	if uint64(n) != uint64(len(b)-5) {
		return nil, fmt.Errorf("grpc: message claims %d bytes, %d follow", n, len(b)-5)
	}
	return b[5:], nil
}

// decodeHealthResponse reads field 1 of a HealthCheckResponse, skipping
// fields it does not know as protobuf requires. A missing status is
// UNKNOWN (0), protobuf's default.
func decodeHealthResponse(b []byte) (int64, error) {
	var status int64
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errors.New("bad field key")
		}
		b = b[n:]
		field, wire := key>>3, key&7
		if field == 0 {
			return 0, errors.New("field number 0")
		}
		switch wire {
		case 0: // varint
			v, n := binary.Uvarint(b)
			if n <= 0 {
				return 0, errors.New("bad varint")
			}
			b = b[n:]
			if field == 1 {
				status = int64(int32(v)) // an enum is an int32
			}
		case 1: // fixed64
			if len(b) < 8 {
				return 0, errors.New("short fixed64")
			}
			b = b[8:]
		case 2: // length-delimited
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return 0, errors.New("bad length")
			}
			b = b[n+int(l):]
		case 5: // fixed32
			if len(b) < 4 {
				return 0, errors.New("short fixed32")
			}
			b = b[4:]
		default:
			return 0, fmt.Errorf("unsupported wire type %d", wire)
		}
	}
	return status, nil
}
