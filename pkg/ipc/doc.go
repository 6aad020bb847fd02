// Package ipc is consort's local protocol: yamux sessions over Unix sockets
// (or TCP for cross-node calls), one stream per call, msgpack messages.
//
// Wire format. Every message is a frame: a 4-byte big-endian length then
// that many bytes of msgpack. A call opens a stream and writes two frames:
// a request header (the method name) and the request body. The server
// answers with a sequence of responses, each a header frame optionally
// followed by a body frame:
//
//	header{Kind: item}            + body   one streamed item (stream calls)
//	header{Kind: result}          + body   the unary result, end of call
//	header{Kind: end}                      a stream ended cleanly
//	header{Kind: error, Code, Msg}         the call failed, end of call
//
// Errors carry a stable Code. API packages declare their sentinels with
// NewError, and the client rebuilds an *Error with the same code, so
// errors.Is(err, somepkg.ErrX) holds across the socket.
//
// Frames are bounded (MaxFrame); a larger frame fails the call with
// ErrFrameTooLarge and never allocates its claimed size. A handler panic
// answers that one call with CodeInternal and the daemon keeps running.
//
// Cost per call. A message (request header and body, or a response
// header and body) leaves as one yamux data frame, and the session's
// connection batches yamux's writes (batchConn): a stream's open and its
// request, or a response and its close, go out together, and under load
// the frames of many calls share a system call. Encoders, decoders and
// write buffers are pooled; nothing is buffered per call beyond what
// yamux keeps per stream.
package ipc
