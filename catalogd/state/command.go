package state

import (
	"errors"
	"fmt"

	"github.com/consort-io/consort/pkg/ipc"
	"github.com/consort-io/consort/pkg/structs"
)

// MessageType is the first byte of every command and says how to decode the
// rest. Values are never reused.
type MessageType uint8

// Command types (SessionType and TxnType are in session_command.go). More
// (tombstone reap) come later.
const (
	// KVSType carries a KVSRequest.
	KVSType MessageType = 1
	// RegisterType carries a structs.RegisterRequest (Consul's
	// Catalog.Register body).
	RegisterType MessageType = 2
	// DeregisterType carries a structs.DeregisterRequest.
	DeregisterType MessageType = 3
)

// IgnoreUnknownTypeFlag marks a command type that a replica not knowing it
// may skip (Apply answers nil) instead of answering an error, as Consul's
// structs.IgnoreUnknownTypeFlag does. New optional command types set it.
const IgnoreUnknownTypeFlag MessageType = 128

// KVOp names a KV write operation; the values are Consul's api.KVOp.
type KVOp string

// KV operations.
const (
	KVSet        KVOp = "set"
	KVCAS        KVOp = "cas"
	KVDelete     KVOp = "delete"
	KVDeleteCAS  KVOp = "delete-cas"
	KVDeleteTree KVOp = "delete-tree"
)

// KVSRequest is the body of a KVSType command. For cas and delete-cas,
// Entry.ModifyIndex is the expected index (0 for cas: the key must not
// exist). For delete-tree, Entry.Key is the prefix. For lock and unlock,
// Entry.Session names the session. Other index fields of Entry are
// ignored, and Session by every other operation.
type KVSRequest struct {
	Op    KVOp            `codec:"op"`
	Entry structs.KVEntry `codec:"entry"`
	// Now is the writer's clock in unix nanoseconds, compared with
	// lock-delays by lock.
	Now int64 `codec:"now,omitempty"`
}

// ErrInvalidCommand is wrapped by the error Apply returns for a command it
// cannot apply: undecodable, of unknown type or operation, or missing its
// key. Such a command changes nothing on any replica.
var ErrInvalidCommand = errors.New("invalid command")

// ErrStaleIndex is wrapped by the error Apply returns for an index not
// above LastIndex; the command is not applied again.
var ErrStaleIndex = errors.New("index already applied")

// Encode returns the command of type t carrying req: t's byte followed by
// the msgpack encoding of req.
func Encode(t MessageType, req any) ([]byte, error) {
	body, err := ipc.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode command type %d: %w", t, err)
	}
	b := make([]byte, 1+len(body))
	b[0] = byte(t)
	copy(b[1:], body)
	return b, nil
}

// DecodeCommand splits a command into its type and decoded request: a
// *KVSRequest for KVSType, a *structs.RegisterRequest for RegisterType, a
// *structs.DeregisterRequest for DeregisterType, a *SessionRequest for
// SessionType, a *TxnRequest for TxnType. Errors wrap ErrInvalidCommand. A
// type it does not know yields that type, a nil request and an error.
func DecodeCommand(data []byte) (MessageType, any, error) {
	if len(data) == 0 {
		return 0, nil, fmt.Errorf("%w: empty command", ErrInvalidCommand)
	}
	t := MessageType(data[0])
	switch t {
	case KVSType:
		req := new(KVSRequest)
		if err := decodeBody(data[1:], req); err != nil {
			return t, nil, fmt.Errorf("%w: decode kvs request: %v", ErrInvalidCommand, err)
		}
		return t, req, nil
	case RegisterType:
		req := new(structs.RegisterRequest)
		if err := decodeBody(data[1:], req); err != nil {
			return t, nil, fmt.Errorf("%w: decode register request: %v", ErrInvalidCommand, err)
		}
		return t, req, nil
	case DeregisterType:
		req := new(structs.DeregisterRequest)
		if err := decodeBody(data[1:], req); err != nil {
			return t, nil, fmt.Errorf("%w: decode deregister request: %v", ErrInvalidCommand, err)
		}
		return t, req, nil
	case SessionType:
		req := new(SessionRequest)
		if err := decodeBody(data[1:], req); err != nil {
			return t, nil, fmt.Errorf("%w: decode session request: %v", ErrInvalidCommand, err)
		}
		return t, req, nil
	case TxnType:
		req := new(TxnRequest)
		if err := decodeBody(data[1:], req); err != nil {
			return t, nil, fmt.Errorf("%w: decode txn request: %v", ErrInvalidCommand, err)
		}
		return t, req, nil
	default:
		return t, nil, fmt.Errorf("%w: unknown message type %d", ErrInvalidCommand, t)
	}
}

// decodeBody decodes msgpack into v. The codec turns its own panics into
// errors; the recover is a second guard so that no input, however
// malformed, can take the state machine down.
func decodeBody(b []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return ipc.Unmarshal(b, v)
}
